"""Host-fact parsers on real FreeBSD output (quoted in reference/freebsd-bhyve.md §4) and on
noisy variants of it."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.facts import (
    Interface,
    parse_ifconfig,
    parse_kldstat,
    parse_sysctl,
    parse_zfs_volumes,
)

DATA = Path(__file__).parent / "data"


def data(name: str) -> str:
    return (DATA / name).read_text()


# -- kldstat ---------------------------------------------------------------------------------


def test_plain_kldstat_names_loaded_files_without_ko() -> None:
    assert parse_kldstat(data("kldstat.txt")) == {"zfs", "vmm"}


def test_verbose_kldstat_counts_modules_compiled_into_the_kernel() -> None:
    modules = parse_kldstat(data("kldstat_v_vmm_in_kernel.txt"))
    assert "vmm" in modules  # compiled in: no vmm.ko row, only a module row
    assert {"nmdm", "zfs", "zfsctrl", "pci/ahci", "if_tuntap"} <= modules
    assert "kernel" not in modules


def test_verbose_kldstat_without_vmm_does_not_report_it() -> None:
    text = data("kldstat_v_vmm_in_kernel.txt").replace("\t\t 78 vmm\n", "")
    assert "vmm" not in parse_kldstat(text)


def test_kldstat_dash_m_row_names_the_module() -> None:
    assert parse_kldstat("Id  Refs Name\n 17    1 vmm\n") == {"vmm"}


def test_kldstat_humanized_sizes_parse() -> None:
    text = "Id Refs Address                Size Name\n 5    1 0xffffffff83200000  3.3M vmm.ko\n"
    assert parse_kldstat(text) == {"vmm"}


def test_empty_kldstat_output_means_no_modules() -> None:
    assert parse_kldstat("") == frozenset()


# -- ifconfig --------------------------------------------------------------------------------


def test_bridge_from_vm_bhyve_issue_20() -> None:
    bridge = parse_ifconfig(data("bridge0_vm_bhyve_20.txt"))["bridge0"]
    assert bridge == Interface(
        name="bridge0",
        kind="bridge",
        up=True,
        members=("tap2", "tap0", "bxe2"),
        description="vm-public",
    )


def test_tap_opened_by_bhyve_from_vm_bhyve_issue_558() -> None:
    tap = parse_ifconfig(data("tap3_vm_bhyve_558.txt"))["tap3"]
    assert tap.kind == "tap"
    assert tap.up
    assert tap.opened_by == 76824
    assert tap.description == "vmnet/iris/0/custom"
    assert tap.groups == ("tap", "vm-port")


def test_bridged_tap_shows_its_opener() -> None:
    tap = parse_ifconfig(data("tap0_bridged.txt"))["tap0"]
    assert (tap.kind, tap.up, tap.opened_by) == ("tap", True, 1660)


def test_tap_without_up_flag_is_down_and_unopened() -> None:
    tap = parse_ifconfig(data("tap0_down_iohyve_124.txt"))["tap0"]
    assert (tap.kind, tap.up, tap.opened_by) == ("tap", False, None)


def test_noisy_ifconfig_a_finds_every_interface_in_order() -> None:
    interfaces = parse_ifconfig(data("ifconfig_a_noisy.txt"))
    assert list(interfaces) == [
        "igb0",
        "enc0",
        "lo0",
        "igb0.100",
        "bridge0",
        "vm-web",
        "tap12",
        "bridge7",
        "epair0a",
    ]


def test_noisy_ifconfig_a_details() -> None:
    interfaces = parse_ifconfig(data("ifconfig_a_noisy.txt"))
    igb0 = interfaces["igb0"]
    assert (igb0.kind, igb0.up, igb0.members) == ("other", True, ())
    assert igb0.description == "uplink: member: fake flags=1 (not a member)"
    assert interfaces["enc0"].up is False
    assert interfaces["enc0"].groups == ("enc",)
    bridge = interfaces["bridge0"]
    assert bridge.members == ("vm-web", "igb0")  # STP role/state lines are not members
    # A renamed tap is still a tap: its cloner's group says so.
    assert interfaces["vm-web"].kind == "tap"
    assert interfaces["vm-web"].up is False
    # No groups line: the name decides.
    assert interfaces["tap12"].kind == "tap"
    assert interfaces["tap12"].opened_by == 4242
    assert interfaces["bridge7"] == Interface(name="bridge7", kind="bridge", up=False)
    assert interfaces["epair0a"].kind == "other"
    assert interfaces["lo0"].kind == "other"


def test_names_that_only_look_like_cloners_are_other() -> None:
    text = "tapir0: flags=8843<UP> metric 0 mtu 1500\nbridge: flags=0<> metric 0 mtu 1500\n"
    assert {i.kind for i in parse_ifconfig(text).values()} == {"other"}


def test_empty_ifconfig_output_has_no_interfaces() -> None:
    assert parse_ifconfig("") == {}


# -- sysctl ----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["0", "1"])
def test_sysctl_read(value: str) -> None:
    text = f"net.link.tap.up_on_open: {value}\n"
    assert parse_sysctl(text) == {"net.link.tap.up_on_open": value}


def test_sysctl_write_output_gives_the_new_value() -> None:
    assert parse_sysctl("net.link.tap.up_on_open: 0 -> 1\n") == {"net.link.tap.up_on_open": "1"}


def test_sysctl_several_lines_and_noise() -> None:
    text = (
        "sysctl: unknown oid 'net.link.bridge.x'\n"
        "kern.ostype: FreeBSD\n"
        "dev.igb.0.%desc: Intel(R) PRO/1000 PCI-Express Network Driver\n"
        "kern.version: FreeBSD 14.1-RELEASE GENERIC\n"
        "\n"
    )
    assert parse_sysctl(text) == {
        "kern.ostype": "FreeBSD",
        "dev.igb.0.%desc": "Intel(R) PRO/1000 PCI-Express Network Driver",
        "kern.version": "FreeBSD 14.1-RELEASE GENERIC",
    }


# -- zfs -------------------------------------------------------------------------------------


def test_zfs_volumes() -> None:
    text = "zroot/linuxdisk0\t17179869184\nzroot/vms/bhyvevm0\t8589934592\n"
    assert parse_zfs_volumes(text) == {
        "zroot/linuxdisk0": 17179869184,
        "zroot/vms/bhyvevm0": 8589934592,
    }


def test_zfs_non_volumes_and_blank_lines_are_skipped() -> None:
    assert parse_zfs_volumes("\nzroot\t-\nzroot/v\t16384\n") == {"zroot/v": 16384}


def test_zfs_sizes_without_dash_p_are_refused() -> None:
    with pytest.raises(ValueError, match="zroot/v"):
        parse_zfs_volumes("zroot/v\t16G\n")
