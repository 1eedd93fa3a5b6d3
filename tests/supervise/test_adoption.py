"""A new daemon adopts running guests from the shim's records and acts on exits it missed."""

from __future__ import annotations

from typing import Any

from structlog.testing import capture_logs
from supervise_fakes import FakeClock, FakeOps, SupervisorRig, guest

from reconciler.policy import ExitStatus
from reconciler.supervise import BootRecord

SHIM, BHYVE = 501, 502


def rig_with(
    rec: BootRecord, *, live: tuple[int, ...] = (), vm: bool = False, **fields: Any
) -> SupervisorRig:
    clock = FakeClock()
    ops = FakeOps(clock)
    ops.set_record(rec, live=live, vm=vm)
    return SupervisorRig(guest(**fields), ops=ops, clock=clock)


def test_live_guest_is_adopted_and_no_second_bhyve_starts() -> None:
    with capture_logs() as logs:
        rig = rig_with(
            BootRecord(shim_pid=SHIM, bhyve_pid=BHYVE, bhyve_age=90.0), live=(SHIM, BHYVE), vm=True
        )
        for _ in range(5):
            rig.sup.poll()
            rig.clock.advance(1)
        rig.sup.desire(guest())
    snap = rig.sup.snapshot()
    assert (snap.state, snap.pid) == ("running", BHYVE)
    assert snap.started_at == 1000.0 - 90.0
    assert rig.ops.names() == []
    adopted = [e for e in logs if e["event"] == "guest.adopted"]
    assert [(e["guest"], e["pid"]) for e in adopted] == [("vm1", BHYVE)]


def test_adopted_guest_whose_spec_changed_meanwhile_is_not_restarted() -> None:
    clock = FakeClock()
    ops = FakeOps(clock)
    ops.set_record(BootRecord(shim_pid=SHIM, bhyve_pid=BHYVE), live=(SHIM, BHYVE), vm=True)
    rig = SupervisorRig(guest(cpus=8), ops=ops, clock=clock)
    rig.sup.poll()
    assert rig.ops.names() == []
    rig.sup.desire(guest(cpus=2))
    assert rig.ops.names() == ["signal-SIGTERM", "destroy", "spawn"]


def test_adopted_guest_is_watched_and_stopped_like_our_own() -> None:
    rig = rig_with(BootRecord(shim_pid=SHIM, bhyve_pid=BHYVE), live=(SHIM, BHYVE), vm=True)
    rig.sup.poll()
    rig.sup.stop()
    assert rig.ops.calls == [
        (rig.clock.now, "signal-SIGTERM", BHYVE),
        (rig.clock.now, "destroy", None),
    ]
    assert rig.state() == "held"


def test_adopted_guest_whose_shim_was_killed_is_watched_through_bhyve() -> None:
    rig = rig_with(BootRecord(shim_pid=SHIM, bhyve_pid=BHYVE), live=(BHYVE,), vm=True)
    rig.sup.poll()
    assert rig.state() == "running"
    rig.ops.live.clear()
    rig.sup.poll()
    assert rig.state() == "crash-loop"
    assert rig.sup.snapshot().last_exit_meaning == "unknown"


def test_guest_in_its_loader_is_adopted_as_starting() -> None:
    rig = rig_with(BootRecord(shim_pid=SHIM, loader_pid=BHYVE - 1), live=(SHIM, BHYVE - 1), vm=True)
    rig.sup.poll()
    assert rig.state() == "starting"
    rig.ops.run_bhyve()
    rig.sup.poll()
    assert rig.state() == "running"
    assert rig.ops.names() == []


def test_reboot_while_no_daemon_ran_reboots_without_destroying() -> None:
    rig = rig_with(BootRecord(shim_pid=SHIM, bhyve_pid=BHYVE, exit=ExitStatus(0)), vm=True)
    rig.sup.poll()
    assert rig.ops.names() == ["spawn"]
    assert rig.state() == "starting"


def test_crash_while_no_daemon_ran_backs_off() -> None:
    rig = rig_with(BootRecord(shim_pid=SHIM, bhyve_pid=BHYVE, exit=ExitStatus(4)), vm=True)
    rig.sup.poll()
    snap = rig.sup.snapshot()
    assert snap.state == "crash-loop"
    assert snap.next_restart_at == rig.clock.now + 1.0
    assert rig.ops.names() == ["destroy"]
    assert snap.last_exit_meaning == "error"


def test_power_off_while_no_daemon_ran_stays_off() -> None:
    rig = rig_with(BootRecord(shim_pid=SHIM, bhyve_pid=BHYVE, exit=ExitStatus(1)), vm=True)
    rig.sup.poll()
    rig.clock.advance(60)
    rig.sup.poll()
    assert rig.state() == "powered-off"
    assert rig.ops.names() == ["destroy"]


def test_held_guest_stays_held_across_a_daemon_restart() -> None:
    rig = rig_with(
        BootRecord(shim_pid=SHIM, bhyve_pid=BHYVE, exit=ExitStatus(1), outcome="held"),
        restart="always",
    )
    rig.sup.poll()
    rig.clock.advance(60)
    rig.sup.poll()
    assert rig.state() == "held"
    assert rig.ops.names() == []


def test_stop_interrupted_by_a_daemon_crash_is_finished_by_the_next_daemon() -> None:
    rig = rig_with(
        BootRecord(shim_pid=SHIM, bhyve_pid=BHYVE, outcome="held"), live=(SHIM, BHYVE), vm=True
    )
    rig.sup.poll()
    assert rig.ops.names() == ["signal-SIGTERM", "destroy"]
    assert rig.state() == "held"


def test_daemon_shutdown_outcome_lets_the_next_daemon_boot_the_guest() -> None:
    rig = rig_with(
        BootRecord(shim_pid=SHIM, bhyve_pid=BHYVE, exit=ExitStatus(1), outcome="stopped")
    )
    rig.sup.poll()
    assert rig.ops.names() == ["spawn"]


def test_crash_loop_outcome_resumes_the_backoff() -> None:
    rig = rig_with(BootRecord(shim_pid=SHIM, exit=ExitStatus(4), outcome="crash-loop 3"))
    rig.sup.poll()
    snap = rig.sup.snapshot()
    assert snap.state == "crash-loop"
    assert snap.next_restart_at == rig.clock.now + 4.0
    rig.clock.advance(4.0)
    rig.sup.poll()
    assert rig.ops.names() == ["spawn"]


def test_powered_off_outcome_with_a_leftover_vm_destroys_it() -> None:
    rig = rig_with(BootRecord(exit=ExitStatus(1), outcome="powered-off"), vm=True)
    rig.sup.poll()
    assert rig.state() == "powered-off"
    assert rig.ops.names() == ["destroy"]


def test_record_of_a_guest_whose_file_went_away_is_stopped_and_forgotten() -> None:
    clock = FakeClock()
    ops = FakeOps(clock)
    ops.set_record(BootRecord(shim_pid=SHIM, bhyve_pid=BHYVE), live=(SHIM, BHYVE), vm=True)
    rig = SupervisorRig(None, ops=ops, clock=clock)
    rig.sup.poll()
    assert rig.ops.names() == ["signal-SIGTERM", "destroy", "forget"]
    assert rig.sup.finished


def test_no_record_and_no_file_does_nothing_but_forget() -> None:
    rig = SupervisorRig(None)
    rig.sup.poll()
    assert rig.ops.names() == ["forget"]
    assert rig.sup.finished


def test_a_command_before_the_first_poll_sees_the_missed_exit_first() -> None:
    rig = rig_with(BootRecord(shim_pid=SHIM, bhyve_pid=BHYVE, exit=ExitStatus(1)), vm=True)
    rig.sup.start()
    assert rig.ops.names() == ["destroy", "spawn"]
    assert rig.state() == "starting"
    rig.sup.poll()
    assert rig.ops.names() == ["destroy", "spawn"]
