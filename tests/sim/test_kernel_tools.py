"""Simulated kldstat, kldload, kldunload and sysctl: FreeBSD's output, messages and statuses,
and outputs that parse back into what the state says."""

from __future__ import annotations

from pathlib import Path

import pytest
from sim_helpers import Run

from reconciler.facts import parse_kldstat, parse_sysctl
from reconciler.sim import SimulatedHost
from reconciler.sim.tools import run_tool


def test_fresh_host_has_zfs_and_compiled_in_modules_but_not_vmm_or_nmdm(
    host: SimulatedHost,
) -> None:
    modules = host.modules()
    assert {"zfs", "if_tuntap"} <= modules
    assert not {"vmm", "nmdm"} & modules


def test_kldstat_verbose_parses_back_into_the_state(host: SimulatedHost, tool: Run) -> None:
    assert parse_kldstat(tool("kldstat", "-v").stdout) == host.modules()
    tool("kldload", "vmm")
    assert parse_kldstat(tool("kldstat", "-v").stdout) == host.modules()
    assert "vmm" in host.modules()


def test_plain_kldstat_lists_files(tool: Run) -> None:
    tool("kldload", "nmdm")
    out = tool("kldstat").stdout
    assert out.splitlines()[0] == "Id Refs Address                Size Name"
    assert parse_kldstat(out) == {"zfs", "nmdm"}


def test_kldstat_quiet_module_query_is_the_vmm_check(tool: Run) -> None:
    missing = tool("kldstat", "-q", "-m", "vmm")
    assert (missing.returncode, missing.stdout, missing.stderr) == (1, "", "")
    assert tool("kldload", "vmm").returncode == 0
    present = tool("kldstat", "-q", "-m", "vmm")
    assert (present.returncode, present.stdout) == (0, "")
    # Compiled into the kernel counts for -m but is no file for -n.
    assert tool("kldstat", "-q", "-m", "if_tuntap").returncode == 0
    assert tool("kldstat", "-q", "-n", "if_tuntap").returncode == 1


def test_kldstat_errors_as_freebsd_prints_them(tool: Run) -> None:
    by_file = tool("kldstat", "-n", "vmm")
    assert by_file.returncode == 1
    assert by_file.stderr == "kldstat: can't find file vmm: No such file or directory\n"
    by_module = tool("kldstat", "-m", "vmm")
    assert by_module.stderr == "kldstat: can't find module vmm: No such file or directory\n"
    tool("kldload", "vmm")
    found = tool("kldstat", "-m", "vmm")
    assert found.stdout.splitlines()[0] == "Id  Refs Name"
    assert found.stdout.split()[-1] == "vmm"


def test_kldload_twice_is_refused_with_freebsds_message(tool: Run) -> None:
    assert tool("kldload", "vmm").returncode == 0
    again = tool("kldload", "vmm")
    assert again.returncode == 1
    assert again.stderr == "kldload: can't load vmm: module already loaded or in kernel\n"
    assert tool("kldload", "-n", "vmm.ko").returncode == 0


def test_kldload_of_a_compiled_in_module_is_refused(tool: Run) -> None:
    result = tool("kldload", "if_tuntap")
    assert result.returncode == 1
    assert "module already loaded or in kernel" in result.stderr


def test_kldload_unknown_file(tool: Run) -> None:
    result = tool("kldload", "nosuch")
    assert result.returncode == 1
    assert result.stderr == "kldload: can't load nosuch: No such file or directory\n"


def test_kldunload_refuses_while_a_vm_exists(host: SimulatedHost, tool: Run) -> None:
    tool("kldload", "vmm")
    tool("bhyvectl", "--vm=g", "--create")
    busy = tool("kldunload", "vmm")
    assert (busy.returncode, busy.stderr) == (1, "kldunload: can't unload file: Device busy\n")
    tool("bhyvectl", "--vm=g", "--destroy")
    assert tool("kldunload", "vmm").returncode == 0
    assert "vmm" not in host.modules()


def test_sysctl_read_write_and_value_only(host: SimulatedHost, tool: Run) -> None:
    read = tool("sysctl", "net.link.tap.up_on_open")
    assert read.stdout == "net.link.tap.up_on_open: 0\n"
    write = tool("sysctl", "net.link.tap.up_on_open=1")
    assert write.stdout == "net.link.tap.up_on_open: 0 -> 1\n"
    assert parse_sysctl(write.stdout) == {"net.link.tap.up_on_open": "1"}
    assert host.sysctl("net.link.tap.up_on_open") == "1"
    assert tool("sysctl", "-n", "net.link.tap.up_on_open").stdout == "1\n"


def test_sysctl_output_parses_back_into_the_state(host: SimulatedHost, tool: Run) -> None:
    values = parse_sysctl(tool("sysctl", "net.link.tap").stdout)
    assert values == {
        oid: host.sysctl(oid)
        for oid in (
            "net.link.tap.up_on_open",
            "net.link.tap.devfs_cloning",
            "net.link.tap.user_open",
        )
    }


def test_sysctl_errors(tool: Run) -> None:
    unknown = tool("sysctl", "net.link.tap.nosuch")
    assert (unknown.returncode, unknown.stderr) == (
        1,
        "sysctl: unknown oid 'net.link.tap.nosuch'\n",
    )
    assert tool("sysctl", "-q", "net.link.tap.nosuch").stderr == ""
    assert tool("sysctl", "-i", "net.link.tap.nosuch").returncode == 0
    read_only = tool("sysctl", "kern.ostype=Linux")
    assert (read_only.returncode, read_only.stderr) == (
        1,
        "sysctl: oid 'kern.ostype' is read only\n",
    )
    bad = tool("sysctl", "net.link.tap.up_on_open=yes")
    assert (bad.returncode, bad.stderr) == (1, "sysctl: invalid integer 'yes'\n")


TAP_OIDS = ("net.link.tap.up_on_open", "net.link.tap.devfs_cloning", "net.link.tap.user_open")


def test_the_release_and_memory_are_sysctls(tmp_path: Path, tool: Run) -> None:
    assert tool("sysctl", "-n", "kern.osrelease").stdout == "14.1-RELEASE\n"
    assert tool("sysctl", "-n", "hw.physmem").stdout == f"{1 << 40}\n"
    other = SimulatedHost(tmp_path / "other").setup(release="13.4-RELEASE", physmem=8 << 30)
    assert other.sysctl("kern.osrelease") == "13.4-RELEASE"
    assert other.run(["sysctl", "-n", "hw.physmem"]).stdout == f"{8 << 30}\n"
    other.set_release("15.0-CURRENT")
    assert other.sysctl("kern.osrelease") == "15.0-CURRENT"


def test_a_kernel_without_tuntap_has_no_tap_oids_until_it_is_loaded(tmp_path: Path) -> None:
    custom = SimulatedHost(tmp_path / "custom").setup(compiled_in=())
    unknown = custom.run(["sysctl", "net.link.tap.up_on_open"])
    assert (unknown.returncode, unknown.stderr) == (
        1,
        "sysctl: unknown oid 'net.link.tap.up_on_open'\n",
    )
    assert custom.run(["kldload", "if_tuntap"]).returncode == 0
    assert {oid: custom.sysctl(oid) for oid in TAP_OIDS} == dict(zip(TAP_OIDS, "010", strict=True))
    assert {"if_tuntap", "if_tun", "if_tap"} <= custom.modules()
    assert custom.run(["kldunload", "if_tuntap"]).returncode == 0
    assert custom.sysctl("net.link.tap.up_on_open") is None


def test_ifconfig_loads_tuntap_for_a_tap(tmp_path: Path) -> None:
    custom = SimulatedHost(tmp_path / "custom").setup(compiled_in=())
    assert custom.run(["ifconfig", "tap0", "create"]).returncode == 0
    assert custom.sysctl("net.link.tap.up_on_open") == "0"
    assert "if_tuntap.ko" in custom.run(["kldstat"]).stdout


def test_compiled_in_devices_cannot_be_loaded(tmp_path: Path) -> None:
    custom = SimulatedHost(tmp_path / "custom").setup(
        compiled_in=("if_tuntap", "if_bridge", "nmdm")
    )
    for module in ("if_tuntap", "if_bridge", "nmdm"):
        result = custom.run(["kldload", module])
        assert (result.returncode, result.stderr) == (
            1,
            f"kldload: can't load {module}: module already loaded or in kernel\n",
        )
    assert custom.run(["ifconfig", "bridge0", "create"]).returncode == 0
    assert "if_bridge.ko" not in custom.run(["kldstat"]).stdout
    with pytest.raises(ValueError, match="if_vmx"):
        SimulatedHost(tmp_path / "bad").setup(compiled_in=("if_vmx",))


# Pinned before kernel.py was split into smaller functions: exact text and statuses of the
# options the tests above leave open. Run in this process (the wrappers' own entry point), so
# a table costs no fork per case.

KLDSTAT_USAGE = "usage: kldstat [-dhqv] [-i id] [-n filename]\n       kldstat [-dq] [-m modname]\n"
KLDSTAT_HEADER = "Id Refs Address                Size Name\n"
VMM_ROW = " 3    1 0xffffffff82400000   108a86 vmm.ko\n"
SYSCTL_USAGE = "usage: sysctl [-bdehiNnoqTtWx] [ -B <bufsize> ] [-f filename] name[=value] ...\n"


def here(host: SimulatedHost, *argv: str) -> tuple[int, str, str]:
    status, out, err, _ = run_tool(argv[0], str(host.root), list(argv[1:]))
    return status, out, err


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("-x",), (1, "", "kldstat: illegal option -- x\n" + KLDSTAT_USAGE)),
        (("-i",), (1, "", "kldstat: option requires an argument -- i\n" + KLDSTAT_USAGE)),
        (("extra",), (1, "", KLDSTAT_USAGE)),
        (("-n", "vmm", "extra"), (1, "", KLDSTAT_USAGE)),
        (("-m", "vmm"), (0, "Id  Refs Name\n 17    1 vmm\n", "")),
        (("-m", "if_tuntap"), (0, "Id  Refs Name\n 12    1 if_tuntap\n", "")),
        (("-i", "3"), (0, KLDSTAT_HEADER + VMM_ROW, "")),
        (("-n", "/boot/kernel/vmm.ko"), (0, KLDSTAT_HEADER + VMM_ROW, "")),
        (("-n", "vmm.ko"), (0, KLDSTAT_HEADER + VMM_ROW, "")),
        (("-qn", "vmm"), (0, "", "")),
        (("-q", "-i", "3"), (0, "", "")),
        (("-i", "99"), (1, "", "kldstat: can't find file id 99: No such file or directory\n")),
        (("-q", "-i", "99"), (1, "", "")),
        (("-q", "-n", "nmdm"), (1, "", "")),
        (
            ("-h",),
            (
                0,
                KLDSTAT_HEADER
                + " 1    3 0xffffffff80200000   31M kernel\n"
                + " 2    1 0xffffffff82200000  1.0M zfs.ko\n"
                + " 3    1 0xffffffff82400000  1.0M vmm.ko\n",
                "",
            ),
        ),
        (
            ("-v", "-n", "vmm"),
            (
                0,
                KLDSTAT_HEADER
                + VMM_ROW.removesuffix("\n")
                + " (/boot/kernel/vmm.ko)\n\tContains modules:\n\t\t Id Name\n\t\t 17 vmm\n",
                "",
            ),
        ),
    ],
)
def test_kldstat_options_exactly(
    host: SimulatedHost, args: tuple[str, ...], expected: tuple[int, str, str]
) -> None:
    assert here(host, "kldload", "vmm")[0] == 0
    assert here(host, "kldstat", *args) == expected


ALL_SYSCTLS = (
    ("hw.machine", "amd64"),
    ("hw.ncpu", "8"),
    ("hw.physmem", str(1 << 40)),
    ("kern.osrelease", "14.1-RELEASE"),
    ("kern.ostype", "FreeBSD"),
    ("net.link.tap.devfs_cloning", "1"),
    ("net.link.tap.up_on_open", "0"),
    ("net.link.tap.user_open", "0"),
)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("-x",), (1, "", "sysctl: illegal option -- x\n" + SYSCTL_USAGE)),
        ((), (1, "", SYSCTL_USAGE)),
        (("-q",), (1, "", SYSCTL_USAGE)),
        (("-a",), (0, "".join(f"{o}: {v}\n" for o, v in ALL_SYSCTLS), "")),
        (("-aN",), (0, "".join(f"{o}\n" for o, _ in ALL_SYSCTLS), "")),
        (("-ae",), (0, "".join(f"{o}={v}\n" for o, v in ALL_SYSCTLS), "")),
        (("-a", "kern.ostype"), (0, "kern.ostype: FreeBSD\n", "")),
        (("-e", "kern.ostype"), (0, "kern.ostype=FreeBSD\n", "")),
        (("-N", "net.link.tap"), (0, "".join(f"{o}\n" for o, _ in ALL_SYSCTLS[5:]), "")),
        (("-n", "net.link"), (0, "1\n0\n0\n", "")),
        (("=",), (1, "", "sysctl: unknown oid ''\n")),
        (("-q", "kern.ostype=x", "nosuch=1"), (1, "", "")),
        (
            ("nosuch=1", "kern.ostype", "net.link.tap.up_on_open=x", "hw.ncpu"),
            (
                1,
                "kern.ostype: FreeBSD\nhw.ncpu: 8\n",
                "sysctl: unknown oid 'nosuch'\nsysctl: invalid integer 'x'\n",
            ),
        ),
    ],
)
def test_sysctl_reads_exactly(
    host: SimulatedHost, args: tuple[str, ...], expected: tuple[int, str, str]
) -> None:
    assert here(host, "sysctl", *args) == expected


def test_sysctl_writes_exactly(host: SimulatedHost) -> None:
    oid = "net.link.tap.up_on_open"
    assert here(host, "sysctl", "-n", f"{oid}=1") == (0, "0 -> 1\n", "")
    assert here(host, "sysctl", "-q", "net.link.tap.user_open=1") == (0, "", "")
    assert host.sysctl("net.link.tap.user_open") == "1"
    # The value is stored as the kernel's integer reads back.
    assert here(host, "sysctl", f"{oid}=-05") == (0, f"{oid}: 1 -> -5\n", "")
    assert host.sysctl(oid) == "-5"
    # -i skips an unknown OID being set, and the items after it still run.
    assert here(host, "sysctl", "-i", "nosuch=1", f"{oid}=0") == (0, f"{oid}: -5 -> 0\n", "")
    assert host.sysctl(oid) == "0"
    assert here(host, "sysctl", "-q", "nosuch=1", f"{oid}=1") == (1, "", "")
    assert host.sysctl(oid) == "1"
