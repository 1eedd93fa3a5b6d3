"""What the importer makes of vm-bhyve guests: every sample template's shape converts to a spec
that validates; every key of a file is carried over, dropped with the reason the guest boots
the same without it, or refuses the guest with the reason; nothing is silently lost."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
import tomli_w
from vmbhyve_fixtures import TEMPLATES, guest_conf, system_conf, template_conf

from reconciler.guestfile import guest_to_toml, parse_guest_text
from reconciler.vmbhyve import parse_conf, parse_system_conf
from reconciler.vmbhyve.convert import GuestImport
from reconciler.vmbhyve.datastore import GuestFile, assign_bridges, import_datastore

DEVICE = r"(?:disk|network)[0-9]+_|passthru[0-9]+"
FBSD = (
    'loader="bhyveload"\ncpu=1\nmemory=1G\nuuid="5c4e8a3e-61b5-11ef-9a0c-002590f1a2b3"\n'
    'disk0_type="virtio-blk"\ndisk0_name="disk0.img"\n'
)


def convert(
    text: str,
    name: str = "g",
    *,
    zfs_dataset: str | None = None,
    file_exists: Callable[[str], bool] = lambda _path: True,
) -> GuestImport:
    result = import_datastore(
        "/vm",
        [GuestFile(name, parse_conf(text))],
        system_conf(),
        zfs_dataset=zfs_dataset,
        file_exists=file_exists,
    )
    (guest,) = result.guests
    return guest


def accounted(guest: GuestImport, keys: tuple[str, ...]) -> set[str]:
    """The keys the report names: carried, dropped, refused, and the other keys of a device
    (`network1_`, `passthru0`) whose refusal it reports."""
    refused = {n.key for n in guest.refused}
    devices = {m.group(0) for k in refused if (m := re.match(DEVICE, k))}
    return {*guest.carried, *(n.key for n in guest.dropped), *refused} | {
        key for key in keys if (m := re.match(DEVICE, key)) and m.group(0) in devices
    }


@pytest.mark.parametrize("template", sorted(p.stem for p in TEMPLATES.glob("*.conf")))
def test_every_sample_template_converts_to_a_spec_that_validates(template: str) -> None:
    conf = template_conf(template)
    guest = convert((TEMPLATES / f"{template}.conf").read_text(), template, zfs_dataset="tank/vm")

    assert guest.refused == ()
    assert guest.spec is not None and guest.spec.layout == "vm-bhyve"
    text = tomli_w.dumps(guest_to_toml(guest.spec))
    again, errors = parse_guest_text(text, file=f"/c/{template}.toml", stem=template)
    assert errors == []
    assert again is not None and again.boot_key == guest.spec.boot_key
    assert accounted(guest, conf.keys()) == set(conf.keys())
    # What a template drops is only what `vm install` reads.
    assert all(n.key.startswith("grub_install") for n in guest.dropped), guest.dropped


def test_every_config_sample_key_is_accounted_for() -> None:
    conf = guest_conf("full")
    text = (TEMPLATES.parent / "vm/full/full.conf").read_text()
    guest = convert(text, "full", zfs_dataset="zroot/vm")

    assert guest.spec is None
    assert accounted(guest, conf.keys()) == set(conf.keys())
    assert not set(guest.carried) & {n.key for n in guest.refused}
    assert {n.key for n in guest.refused} == {
        "hostbridge",  # amd
        "comports",  # com1 com2
        "bhyve_options",  # -p 0:2
        "network1_span",
        "network2_switch",  # vale
        "passthru0_options",
        "passthru2",  # =20:0
        "bhyveload_loader", "fwcfg", "virt_random", "graphics_vga", "vnc_password",
        "sound", "sound_rec", "virt_console0", "virt_console1", "nulliso_fix",
    }  # fmt: skip
    dropped = {n.key: n.reason for n in guest.dropped}
    assert dropped["ignore_bad_msr"] == "vm-bhyve never reads it (vm-run reads ignore_msr)"
    assert dropped["bhyveload_args"] == "read only with loader=bhyveload"
    assert set(dropped) >= {"prestart", "priority", "limit_pcpu", "tags", "debug"}


def test_keys_past_a_gap_are_dropped_as_vm_run_never_reads_them() -> None:
    guest = convert(FBSD + 'disk2_type="virtio-blk"\ndisk2_name="x.img"\nnetwork1_type="e1000"\n')
    assert guest.spec is not None and len(guest.spec.disks) == 1 and guest.spec.nics == ()
    gap = "vm-bhyve stops at the first gap in the numbering and never reads it"
    assert [(n.key, n.reason) for n in guest.dropped] == [
        ("disk2_type", gap),
        ("disk2_name", gap),
        ("network1_type", gap),
    ]


def test_a_line_sh_and_vm_bhyve_read_differently_refuses_the_guest() -> None:
    guest = convert(FBSD + "cpu=4\n")
    assert guest.spec is None
    assert [str(n) for n in guest.refused] == [
        "line 7: `cpu` is set again (first on line 2): vm-bhyve reads the first, sysrc and sh "
        "the last"
    ]


@pytest.mark.parametrize(
    ("extra", "refused"),
    [
        ('disk1_type="virtio-blk"\ndisk1_name="d1"\ndisk1_dev="zvol"\n',
         "disk1_dev: a zvol disk: give the datastore's ZFS dataset (--zfs-dataset POOL/DATASET)"),
        ('disk1_type="virtio-scsi"\ndisk1_name="/dev/cam/ctl1.0"\ndisk1_dev="custom"\n',
         "disk1_type: 'virtio-scsi': the spec's disks are virtio-blk, ahci-hd, nvme, ahci-cd"),
        ('network0_type="virtio-net"\n', "network0_switch: no switch: vm-bhyve gives the guest "
         "no device for this NIC yet moves the next devices a slot on; give it a switch or "
         "remove it"),
        ('network0_type="virtio-net"\nnetwork0_switch="storage"\n', "network0_switch: switch "
         "'storage' is a vale switch; the daemon puts taps in if_bridge bridges only"),
        ('network0_type="virtio-net"\nnetwork0_switch="public"\nnetwork0_device="vmnet1"\n',
         "network0_device: 'vmnet1': a spec's NIC is a tap (tapN)"),
        ('bhyveload_args="-h /boot"\n', "bhyveload_args: only `-e NAME=VALUE` arguments have a "
         "counterpart ([loader_env])"),
        ('bhyveload_args="-e autoboot_delay=1"\n', "bhyveload_args: sets autoboot_delay again: "
         "the spec holds one value each"),
        ('xhci_mouse="yes"\n', "xhci_mouse: the spec's USB tablet comes with a UEFI framebuffer "
         "([graphics] tablet) only"),
        ('memory2="x"\ncomports="com2"\n', "comports: the spec has one serial console, on com1"),
    ],
)  # fmt: skip
def test_what_the_spec_cannot_give_refuses_the_guest_with_the_reason(
    extra: str, refused: str
) -> None:
    guest = convert(FBSD + extra)
    assert guest.spec is None
    assert [str(n) for n in guest.refused] == [refused]


def test_a_bhyveload_guest_keeps_its_loader_environment_in_order() -> None:
    guest = convert(FBSD + 'loader_timeout="10"\nbhyveload_args="-e machdep.x=0 -e kern.y=1"\n')
    assert guest.spec is not None
    assert guest.spec.loader_env == (
        ("smbios.system.uuid", "5c4e8a3e-61b5-11ef-9a0c-002590f1a2b3"),  # guest::load's three
        ("autoboot_delay", "10"),
        ("bhyve_vm_name", "g"),
        ("machdep.x", "0"),  # then bhyveload_args, in order
        ("kern.y", "1"),
    )


def test_uefi_variables_stay_in_the_guests_own_file_when_it_exists() -> None:
    text = FBSD.replace("bhyveload", "uefi-csm") + 'uefi_vars="yes"\n'
    kept = convert(text, file_exists=lambda path: path == "/vm/g/uefi-vars.fd")
    fresh = convert(text, file_exists=lambda path: path != "/vm/g/uefi-vars.fd")
    assert kept.spec is not None and fresh.spec is not None
    assert kept.spec.uefi.firmware == "/usr/local/share/uefi-firmware/BHYVE_UEFI_CSM.fd"
    assert (kept.spec.uefi.vars, kept.spec.uefi.vars_file) == (True, "/vm/g/uefi-vars.fd")
    assert (fresh.spec.uefi.vars, fresh.spec.uefi.vars_file) == (True, None)
    assert any("uefi-vars.fd does not exist" in item for item in fresh.todo)


def test_a_fault_ends_the_guest_as_in_vm_bhyve_unless_on_fault_restarts_it() -> None:
    default = convert(FBSD)
    restarting = convert(FBSD + 'on_fault="restart"\n')
    assert default.spec is not None and restarting.spec is not None
    assert default.spec.lifecycle.restart == "never"  # vm::handle_exit: on_fault=shutdown
    assert restarting.spec.lifecycle.restart == "on-failure"


def test_vnc_ports_are_fixed_once_past_every_port_a_guest_names() -> None:
    uefi = FBSD.replace("bhyveload", "uefi") + 'graphics="yes"\n'
    guests = [
        GuestFile("a", parse_conf(uefi)),
        GuestFile("b", parse_conf(uefi + 'graphics_port="5901"\n')),
        GuestFile("c", parse_conf(uefi)),
    ]
    result = import_datastore("/vm", guests, system_conf())
    listens = [g.spec.graphics.listen for g in result.guests if g.spec and g.spec.graphics]
    assert listens == ["0.0.0.0:5900", "0.0.0.0:5901", "0.0.0.0:5902"]


def test_switches_become_bridges_and_their_host_side_becomes_steps() -> None:
    nic = 'network0_type="virtio-net"\nnetwork0_switch="{}"\nnetwork0_mac="58:9c:fc:00:00:01"\n'
    guests = [
        GuestFile("a", parse_conf(FBSD + nic.format("public"))),
        GuestFile("b", parse_conf(FBSD + nic.format("backend"))),
        GuestFile("c", parse_conf(FBSD + nic.format("mine"))),
        GuestFile("d", parse_conf(FBSD + nic.format("nowhere"))),
    ]
    system = parse_system_conf(
        (TEMPLATES.parent / "vm/.config/system.conf").read_text()
        + 'switch_list="public backend storage mine"\ntype_mine="manual"\nbridge_mine="bridge7"\n'
    )
    result = import_datastore(
        "/vm", guests, system, config_bridges={"bridge0": ("igb0",)}, taken={"bridge1"}
    )
    bridges = [g.spec.nics[0].bridge for g in result.guests if g.spec is not None]
    # public's uplink is bridge0's already; backend gets the lowest free bridgeN; the manual
    # switch is its own bridge; an unlisted switch has no bridge in vm-bhyve either.
    assert bridges == ["bridge0", "bridge2", "bridge7", None]
    assert [(t.switch, t.bridge, t.members, t.new) for t in result.bridges] == [
        ("public", "bridge0", ("igb0",), False),
        ("backend", "bridge2", ("igb1.20",), True),
    ]
    todo = "\n".join(result.todo)
    assert 'vlans_igb1="20"' in todo
    assert "mtu 9000" in todo
    assert "WARNING switch backend is private" in todo
    assert "switch mine is your bridge bridge7" in todo
    assert "datastore ssd: its guests are not imported by this run" in todo
    assert any("not in system.conf's switch_list" in item for item in result.guests[3].todo)


def test_a_bridge_named_for_a_switch_wins() -> None:
    system = parse_system_conf('switch_list="lan"\nports_lan="em0"\n')
    tables = assign_bridges(
        system.switches, config_bridges={"bridge0": ("em0",)}, taken=(), overrides={"lan": "br5"}
    )
    assert [(t.bridge, t.new) for t in tables] == [("br5", True)]


@pytest.mark.parametrize(("memory", "spec"), [("512MB", "512M"), ("2g", "2G"), ("1024M", "1024M")])
def test_memory_sizes_as_vm_bhyve_writes_them(memory: str, spec: str) -> None:
    guest = convert(FBSD.replace("memory=1G", f"memory={memory}"))
    assert guest.spec is not None and guest.spec.memory == spec


def test_a_name_the_spec_cannot_take_refuses_the_guest() -> None:
    guest = convert(FBSD, name="-bad")
    assert guest.spec is None
    assert "is not a guest name here" in str(guest.refused[0])
