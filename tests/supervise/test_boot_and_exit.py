"""Booting and acting on how a boot ended, on a fake clock with fake ops (no processes)."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs
from supervise_fakes import SupervisorRig, guest

from reconciler.errors import HostCommandError


def test_first_poll_boots_a_running_guest() -> None:
    rig = SupervisorRig(guest(cpus=2))
    pid = rig.boot_to_running()
    snap = rig.sup.snapshot()
    assert (snap.state, snap.pid, snap.boots) == ("running", pid, 1)
    assert snap.started_at == rig.clock.now
    assert rig.prepare.specs == [guest(cpus=2)]
    assert rig.ops.names() == ["spawn"]


def test_loader_phase_shows_starting_until_bhyve_runs() -> None:
    rig = SupervisorRig(guest())
    rig.sup.poll()
    rig.ops.run_loader()
    rig.sup.poll()
    assert rig.state() == "starting"
    assert rig.sup.snapshot().pid is None


def test_stale_vm_is_destroyed_before_the_first_boot() -> None:
    rig = SupervisorRig(guest())
    rig.ops.vm = True
    rig.sup.poll()
    assert rig.ops.names() == ["destroy", "spawn"]


def test_guest_reboot_runs_loader_and_bhyve_again_without_destroying() -> None:
    rig = SupervisorRig(guest())
    first = rig.boot_to_running()
    rig.ops.end("bhyve", 0)
    with capture_logs() as logs:
        rig.sup.poll()
    assert rig.ops.names() == ["spawn", "spawn"]
    assert rig.ops.vm  # the VM survived the reboot
    assert rig.state() == "starting"
    assert rig.sup.snapshot().boots == 2
    exited = [e for e in logs if e["event"] == "guest.exited"]
    assert exited == [
        {
            "event": "guest.exited",
            "log_level": "info",
            "guest": "vm1",
            "pid": first,
            "status": 0,
            "signal": None,
            "meaning": "reboot",
            "phase": "bhyve",
        }
    ]
    rig.ops.run_loader()
    pid = rig.ops.run_bhyve()
    rig.sup.poll()
    assert (rig.state(), rig.sup.snapshot().pid) == ("running", pid)


@pytest.mark.parametrize("status", [1, 2])
def test_power_off_or_halt_destroys_and_stays_off(status: int) -> None:
    rig = SupervisorRig(guest())
    rig.boot_to_running()
    rig.ops.end("bhyve", status)
    rig.sup.poll()
    rig.clock.advance(3600)
    rig.sup.poll()
    assert rig.state() == "powered-off"
    assert rig.ops.names() == ["spawn", "destroy"]
    assert not rig.ops.vm
    assert rig.ops.rec.outcome == "powered-off"
    assert rig.sup.snapshot().last_exit == status


@pytest.mark.parametrize("status", [1, 2])
def test_loader_quit_or_reboot_at_its_menu_counts_as_stopping(status: int) -> None:
    rig = SupervisorRig(guest())
    rig.sup.poll()
    rig.ops.run_loader()
    rig.ops.end("loader", status)
    rig.sup.poll()
    assert rig.state() == "powered-off"
    assert rig.ops.names() == ["spawn", "destroy"]
    assert rig.sup.snapshot().last_exit_meaning == ("loader-quit", "loader-reboot")[status - 1]


def test_restart_always_boots_again_after_power_off_at_once() -> None:
    rig = SupervisorRig(guest(restart="always"))
    rig.boot_to_running()
    rig.ops.end("bhyve", 1)
    rig.sup.poll()
    assert rig.ops.names() == ["spawn", "destroy", "spawn"]
    assert rig.state() == "starting"


def test_restart_always_backs_off_a_guest_that_keeps_powering_off() -> None:
    rig = SupervisorRig(guest(restart="always"))
    rig.boot_to_running()
    rig.ops.end("bhyve", 1)
    rig.sup.poll()  # first power-off: straight back up
    rig.boot_to_running()
    rig.ops.end("bhyve", 1)
    rig.sup.poll()
    assert rig.state() == "crash-loop"
    assert rig.sup.snapshot().next_restart_at == rig.clock.now + 1.0


@pytest.mark.parametrize(
    ("phase", "status"), [("bhyve", 3), ("bhyve", 4), ("bhyve", 134), ("loader", 64)]
)
def test_failures_destroy_and_back_off(phase: str, status: int) -> None:
    rig = SupervisorRig(guest())
    rig.sup.poll()
    rig.ops.run_loader()
    if phase == "bhyve":
        rig.ops.run_bhyve()
    rig.ops.end(phase, status)
    rig.sup.poll()
    snap = rig.sup.snapshot()
    assert snap.state == "crash-loop"
    assert snap.next_restart_at == rig.clock.now + 1.0
    assert rig.ops.names() == ["spawn", "destroy"]
    assert snap.last_exit == status
    assert snap.last_error is not None and str(snap.last_exit_meaning) in snap.last_error


def test_restart_never_leaves_a_failed_guest_off_in_error() -> None:
    rig = SupervisorRig(guest(restart="never"))
    rig.boot_to_running()
    rig.ops.end("bhyve", 3)
    rig.sup.poll()
    rig.clock.advance(3600)
    rig.sup.poll()
    assert rig.state() == "error"
    assert rig.ops.names() == ["spawn", "destroy"]
    assert rig.sup.snapshot().last_exit_meaning == "triple-fault"


def test_restart_never_still_follows_a_guest_reboot() -> None:
    rig = SupervisorRig(guest(restart="never"))
    rig.boot_to_running()
    rig.ops.end("bhyve", 0)
    rig.sup.poll()
    assert rig.ops.names() == ["spawn", "spawn"]


def test_a_boot_whose_shim_vanished_is_a_failure() -> None:
    rig = SupervisorRig(guest())
    rig.boot_to_running()
    rig.ops.live.clear()  # shim and bhyve gone, nothing recorded
    rig.sup.poll()
    snap = rig.sup.snapshot()
    assert snap.state == "crash-loop"
    assert snap.last_exit_meaning == "unknown"


def test_a_boot_that_cannot_be_prepared_is_retried_with_backoff() -> None:
    rig = SupervisorRig(guest(restart="never"))
    rig.prepare.fail = HostCommandError(["ifconfig", "tap0"], 1, "interface tap0 does not exist")
    with capture_logs() as logs:
        rig.sup.poll()
    snap = rig.sup.snapshot()
    assert snap.state == "crash-loop"
    assert snap.last_error is not None and "tap0 does not exist" in snap.last_error
    assert [e["event"] for e in logs] == ["guest.boot_failed", "guest.restart_scheduled"]
    rig.prepare.fail = None
    rig.clock.advance(1.0)
    rig.sup.poll()
    assert rig.ops.names() == ["spawn"]
    assert rig.state() == "starting"


def test_uefi_guest_has_no_loader_phase() -> None:
    rig = SupervisorRig(guest(loader="uefi"))
    rig.boot_to_running()
    spawned = rig.ops.calls[0][2]
    assert spawned.loader is None
