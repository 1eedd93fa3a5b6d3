"""Running simulated guests: real processes, real signals, bhyve's exit statuses, /dev/vmm
entries that outlive bhyve, taps opened by the guest, and what a VM needs between two boots."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
from sim_helpers import (
    GUEST,
    HANDBOOK_ARGV,
    LOAD_ARGV,
    Boot,
    Run,
    fails,
    wait_running,
)

from reconciler.facts import parse_ifconfig
from reconciler.sim import SimulatedHost
from reconciler.sim.host import CommandRecord


def running(
    host: SimulatedHost, boot: Boot, tool: Run, *argv: str
) -> tuple[subprocess.Popen[str], int]:
    """Load the Handbook guest's VM, then boot it as the supervisor does."""
    loaded = tool(*LOAD_ARGV)
    assert (loaded.returncode, loaded.stderr) == (0, "")
    process = boot(*(argv or HANDBOOK_ARGV))
    pid = wait_running(host, process, argv[-1] if argv else GUEST)
    assert pid == process.pid  # bhyve.sh is exec'd: the pid the supervisor spawned
    return process, pid


@pytest.mark.parametrize(
    ("what", "status"),
    [("reboot", 0), ("poweroff", 1), ("halt", 2), ("triple-fault", 3), ("fail", 4)],
)
def test_guest_exits_with_bhyves_status(
    ready: SimulatedHost, boot: Boot, tool: Run, what: str, status: int
) -> None:
    process, _ = running(ready, boot, tool)
    ready.guest_do(GUEST, what)
    assert process.wait(timeout=10) == status
    assert ready.bhyve_pid(GUEST) is None
    assert GUEST in ready.vms()  # the VM outlives bhyve until bhyvectl --destroy


def test_sigterm_is_the_acpi_power_button(ready: SimulatedHost, boot: Boot, tool: Run) -> None:
    process, pid = running(ready, boot, tool)
    os.kill(pid, signal.SIGTERM)
    assert process.wait(timeout=10) == 1


def test_a_guest_ignoring_acpi_keeps_running_until_forced_off(
    ready: SimulatedHost, boot: Boot, tool: Run
) -> None:
    ready.set_acpi(GUEST, honour=False)
    process, pid = running(ready, boot, tool)
    os.kill(pid, signal.SIGTERM)
    with pytest.raises(subprocess.TimeoutExpired):
        process.wait(timeout=0.3)
    assert ready.bhyve_pid(GUEST) == pid
    assert tool("bhyvectl", f"--vm={GUEST}", "--force-poweroff").returncode == 0
    assert process.wait(timeout=10) == 1


def test_sigkill_kills(ready: SimulatedHost, boot: Boot, tool: Run) -> None:
    process, pid = running(ready, boot, tool)
    os.kill(pid, signal.SIGKILL)
    assert process.wait(timeout=10) == -signal.SIGKILL
    assert ready.bhyve_pid(GUEST) is None


def test_force_reset_is_a_reboot(ready: SimulatedHost, boot: Boot, tool: Run) -> None:
    process, _ = running(ready, boot, tool)
    assert tool("bhyvectl", f"--vm={GUEST}", "--force-reset").returncode == 0
    assert process.wait(timeout=10) == 0


@pytest.mark.parametrize(
    ("release", "status", "stderr"),
    [
        ("13.4-RELEASE", 1, "vm_run error -1, errno 6\n"),
        ("14.1-RELEASE", 1, "vm_run error -1, errno 6\n"),
        ("15.0-CURRENT", 4, ""),
    ],
)
def test_destroy_under_a_running_bhyve_ends_it_and_the_vm(
    ready: SimulatedHost, boot: Boot, tool: Run, release: str, status: int, stderr: str
) -> None:
    ready.set_release(release)
    process, _ = running(ready, boot, tool)
    assert tool("bhyvectl", "--destroy", f"--vm={GUEST}").returncode == 0
    # 13.x/14.x: indistinguishable by status from a guest power-off (reference §8.2).
    assert fails(process) == (status, stderr)
    assert ready.vms() == frozenset()


def test_a_rebooted_guest_needs_its_loader_again(
    ready: SimulatedHost, boot: Boot, tool: Run
) -> None:
    process, _ = running(ready, boot, tool)
    ready.guest_do(GUEST, "reboot")
    assert process.wait(timeout=10) == 0
    # Its vCPUs are still active: only a loader's vm_reinit() makes the VM bootable again.
    again = boot(*HANDBOOK_ARGV)
    assert fails(again) == (71, "bhyve: could not activate CPU 0: Device busy\n")
    running(ready, boot, tool)
    assert ready.boots(GUEST) == 2


def test_a_killed_guests_vm_must_be_destroyed(ready: SimulatedHost, boot: Boot, tool: Run) -> None:
    process, pid = running(ready, boot, tool)
    os.kill(pid, signal.SIGKILL)
    process.wait(timeout=10)
    # Its vCPUs never suspended, so vm_reinit() refuses.
    reload = tool(*LOAD_ARGV)
    assert (reload.returncode, reload.stderr) == (1, "vm_reinit: Device busy\n")
    assert tool("bhyvectl", f"--vm={GUEST}", "--destroy").returncode == 0
    running(ready, boot, tool)


def test_a_loader_cannot_reinit_a_running_guest(
    ready: SimulatedHost, boot: Boot, tool: Run
) -> None:
    running(ready, boot, tool)
    reload = tool(*LOAD_ARGV)
    assert (reload.returncode, reload.stderr) == (1, "vm_reinit: Device busy\n")
    assert ready.bhyve_pid(GUEST) is not None


def test_tap_is_opened_by_the_guest_and_released_when_it_exits(
    ready: SimulatedHost, boot: Boot, tool: Run
) -> None:
    tool("ifconfig", "tap0", "create")
    tool("ifconfig", "bridge0", "create")
    tool("ifconfig", "bridge0", "addm", "tap0")
    assert ready.interfaces()["tap0"].up is False
    process, pid = running(ready, boot, tool)
    shown = tool("ifconfig", "tap0").stdout
    assert f"\tOpened by PID {pid}\n" in shown
    tap = parse_ifconfig(tool("ifconfig", "-a").stdout)["tap0"]
    assert (tap.opened_by, tap.up) == (pid, True)  # bhyve 14 brings its tap up
    assert ready.interfaces()["tap0"] == tap
    ready.guest_do(GUEST, "poweroff")
    process.wait(timeout=10)
    assert "Opened by PID" not in tool("ifconfig", "tap0").stdout
    assert ready.interfaces()["bridge0"].members == ("tap0",)


def test_a_killed_guest_no_longer_holds_its_tap(
    ready: SimulatedHost, boot: Boot, tool: Run
) -> None:
    process, pid = running(ready, boot, tool)
    os.kill(pid, signal.SIGKILL)
    process.wait(timeout=10)
    assert ready.interfaces()["tap0"].opened_by is None


def test_a_missing_tap_is_cloned_unbridged(ready: SimulatedHost, boot: Boot, tool: Run) -> None:
    assert "tap0" not in ready.interfaces()
    _, pid = running(ready, boot, tool)
    tap = ready.interfaces()["tap0"]
    assert (tap.kind, tap.opened_by) == ("tap", pid)
    assert all("tap0" not in i.members for i in ready.interfaces().values())


def test_boots_are_counted(ready: SimulatedHost, boot: Boot, tool: Run) -> None:
    assert ready.boots(GUEST) == 0
    for expected in (1, 2):
        process, _ = running(ready, boot, tool)
        ready.guest_do(GUEST, "reboot")
        process.wait(timeout=10)
        assert ready.boots(GUEST) == expected


def test_a_guest_is_one_light_process(ready: SimulatedHost, boot: Boot, tool: Run) -> None:
    _, pid = running(ready, boot, tool)
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if not children.exists():
        pytest.skip("needs Linux /proc")
    # No child (such as a sleep) that a SIGKILL would orphan.
    assert children.read_text().split() == []
    assert Path(f"/proc/{pid}/comm").read_text().strip() in ("sh", "dash")


def test_bhyve_is_logged_when_it_becomes_the_guest(
    ready: SimulatedHost, boot: Boot, tool: Run
) -> None:
    assert tool(*LOAD_ARGV).returncode == 0
    ready.clear_commands()
    process = boot(*HANDBOOK_ARGV)
    wait_running(ready, process, GUEST)
    assert ready.command_records() == [CommandRecord(("bhyve", *HANDBOOK_ARGV), None)]
    ready.guest_do(GUEST, "halt")
    assert process.wait(timeout=10) == 2


def test_guest_do_without_a_running_guest(ready: SimulatedHost) -> None:
    with pytest.raises(LookupError):
        ready.guest_do(GUEST, "reboot")
    with pytest.raises(ValueError, match="explode"):
        ready.guest_do(GUEST, "explode")
