"""Simulated kldstat, kldload, kldunload and sysctl: FreeBSD's output, messages and statuses,
and outputs that parse back into what the state says."""

from __future__ import annotations

from sim_tools import Run

from reconciler.facts import parse_kldstat, parse_sysctl
from reconciler.sim import SimulatedHost


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
