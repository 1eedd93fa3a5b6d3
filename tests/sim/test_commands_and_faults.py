"""The command log the tests count, faults injected by pattern, and tools run behind the
daemon's back."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import cast

import pytest
from sim_helpers import GUEST, HANDBOOK_ARGV, LOAD_ARGV, Boot, Run

from reconciler.sim import SimulatedHost, procs
from reconciler.sim import state as st
from reconciler.sim.host import CommandRecord


def test_every_tool_run_is_logged_in_order_with_its_status(host: SimulatedHost, tool: Run) -> None:
    tool("kldstat", "-q", "-m", "vmm")
    tool("kldload", "vmm")
    tool("ifconfig", "tap0", "create")
    tool("ifconfig", "tap0", "create")
    assert host.commands() == [
        ["kldstat", "-q", "-m", "vmm"],
        ["kldload", "vmm"],
        ["ifconfig", "tap0", "create"],
        ["ifconfig", "tap0", "create"],
    ]
    assert [r.status for r in host.command_records()] == [1, 0, 0, 1]
    host.clear_commands()
    assert host.commands() == []


def test_awkward_arguments_survive_the_log(host: SimulatedHost, tool: Run) -> None:
    description = 'say "hi"\\ \t ünï'
    tool("ifconfig", "lo0", "description", description)
    assert host.command_records() == [
        CommandRecord(("ifconfig", "lo0", "description", description), 0)
    ]
    assert host.interfaces()["lo0"].description == description


def test_run_behind_the_daemons_back_is_not_logged(host: SimulatedHost) -> None:
    result = host.run(["ifconfig", "tap3", "create"])
    assert result.returncode == 0
    assert "tap3" in host.interfaces()
    assert host.commands() == []


def test_fault_matches_the_joined_argv(host: SimulatedHost, tool: Run) -> None:
    host.inject_fault("ifconfig bridge0 addm tap1", status=1, stderr="ifconfig: BRDGADD tap1: boom")
    tool("ifconfig", "bridge0", "create")
    tool("ifconfig", "tap1", "create")
    failed = tool("ifconfig", "bridge0", "addm", "tap1")
    assert (failed.returncode, failed.stderr) == (1, "ifconfig: BRDGADD tap1: boom\n")
    assert host.interfaces()["bridge0"].members == ()  # the tool did nothing
    assert host.command_records()[-1] == CommandRecord(("ifconfig", "bridge0", "addm", "tap1"), 1)
    assert tool("ifconfig", "bridge0", "addm", "tap1").returncode == 1  # no count: stays
    host.clear_faults()
    assert tool("ifconfig", "bridge0", "addm", "tap1").returncode == 0


def test_fault_with_a_count_is_used_up(host: SimulatedHost, tool: Run) -> None:
    host.inject_fault("kldload *", status=5, count=2)
    assert [tool("kldload", "vmm").returncode for _ in range(3)] == [5, 5, 0]
    assert "vmm" in host.modules()


def test_fault_pattern_must_match_the_whole_argv(tool: Run, host: SimulatedHost) -> None:
    host.inject_fault("ifconfig tap0")
    assert tool("ifconfig", "tap0", "create").returncode == 0
    assert tool("ifconfig", "tap0").returncode == 1


def test_faults_do_not_touch_runs_behind_the_daemons_back(host: SimulatedHost) -> None:
    host.inject_fault("sysctl *")
    assert host.run(["sysctl", "-n", "kern.ostype"]).stdout == "FreeBSD\n"


def test_env_puts_the_tools_first_on_path(host: SimulatedHost) -> None:
    env = host.env()
    assert env["PATH"].split(":")[0] == str(host.bin_dir)
    assert env["BHYVE_SIM_ROOT"] == str(host.root)
    assert host.vmm_dir == host.root / "dev" / "vmm"
    firmware = host.path("/usr/local/share/uefi-firmware/BHYVE_UEFI_VARS.fd")
    assert firmware.is_file()


def test_guest_helpers_work_without_proc(
    ready: SimulatedHost, tool: Run, boot: Boot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # FreeBSD has no /proc by default: the test-side helpers fall back on the guest's records
    # and kill(pid, 0).
    monkeypatch.setattr(procs, "PROC_ROOT", str(tmp_path / "no-proc"))
    assert tool(*LOAD_ARGV).returncode == 0
    process = boot(*HANDBOOK_ARGV)
    pid = ready.wait_for_bhyve(GUEST)
    assert pid == process.pid
    assert ready.interfaces()["tap0"].opened_by == pid
    ready.guest_do(GUEST, "poweroff")
    assert process.wait(timeout=10) == 1
    assert ready.bhyve_pid(GUEST) is None  # bhyve.sh removed its pid record
    assert tool(*LOAD_ARGV).returncode == 0
    killed = boot(*HANDBOOK_ARGV)
    assert ready.wait_for_bhyve(GUEST) == killed.pid
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait(timeout=10)  # reaped: kill(pid, 0) now fails although the record stays
    assert ready.bhyve_pid(GUEST) is None
    with pytest.raises(LookupError):
        ready.guest_do(GUEST, "reboot")


def test_setup_upgrades_a_state_an_earlier_sim_wrote(host: SimulatedHost, tool: Run) -> None:
    with st.Store(str(host.root)) as store:
        old = cast("dict[str, object]", store.state)
        for key in ("vms", "loader_fault", "zvol_delay", "pending_zvols"):
            del old[key]
        del store.state["sysctl"]["kern.osrelease"]
        del cast("dict[str, object]", store.state["datasets"]["zroot"])["origin"]
        store.dirty = True
    SimulatedHost(host.root).setup()
    assert host.sysctl("kern.osrelease") == "14.1-RELEASE"
    assert tool("bhyveload", "-m", "256M", "g").returncode == 0
    assert tool("zfs", "create", "-V", "1G", "zroot/a").returncode == 0
