"""Crash loops on a fake clock: restarts 1 s, 2 s, 4 s apart, reset after 10 min of running."""

from __future__ import annotations

from structlog.testing import capture_logs
from supervise_fakes import SupervisorRig, guest


def crash_and_measure(rig: SupervisorRig) -> float:
    """Crash the running guest now; return how long until the supervisor boots it again."""
    rig.ops.end("bhyve", 4)
    rig.sup.poll()
    crashed_at = rig.clock.now
    spawns = len(rig.ops.times("spawn"))
    while len(rig.ops.times("spawn")) == spawns:
        rig.clock.advance(0.25)
        rig.sup.poll()
    return rig.ops.times("spawn")[-1] - crashed_at


def test_three_crashes_in_a_row_restart_one_two_four_seconds_apart() -> None:
    rig = SupervisorRig(guest())
    rig.boot_to_running()
    delays = []
    for _ in range(3):
        delays.append(crash_and_measure(rig))
        rig.boot_to_running()
    assert delays == [1.0, 2.0, 4.0]


def test_crash_loop_state_names_its_next_restart() -> None:
    rig = SupervisorRig(guest())
    rig.boot_to_running()
    rig.ops.end("bhyve", 4)
    with capture_logs() as logs:
        rig.sup.poll()
    snap = rig.sup.snapshot()
    assert snap.state == "crash-loop"
    assert snap.next_restart_at == rig.clock.now + 1.0
    assert rig.sup.next_deadline() == snap.next_restart_at
    assert rig.ops.rec.outcome == "crash-loop 1"
    scheduled = [e for e in logs if e["event"] == "guest.restart_scheduled"]
    assert [(e["guest"], e["delay"]) for e in scheduled] == [("vm1", 1.0)]


def test_ten_minutes_of_stable_running_resets_the_backoff() -> None:
    rig = SupervisorRig(guest())
    rig.boot_to_running()
    assert crash_and_measure(rig) == 1.0
    rig.boot_to_running()
    assert crash_and_measure(rig) == 2.0
    rig.boot_to_running()
    rig.clock.advance(600)
    rig.sup.poll()
    assert crash_and_measure(rig) == 1.0


def test_reboots_do_not_break_a_stable_run() -> None:
    rig = SupervisorRig(guest())
    rig.boot_to_running()
    assert crash_and_measure(rig) == 1.0
    rig.boot_to_running()
    assert crash_and_measure(rig) == 2.0
    rig.boot_to_running()
    rig.clock.advance(400)
    rig.ops.end("bhyve", 0)
    rig.sup.poll()
    rig.boot_to_running()
    rig.clock.advance(200)
    assert crash_and_measure(rig) == 1.0


def test_a_guest_failing_during_its_crash_loop_keeps_doubling() -> None:
    rig = SupervisorRig(guest())
    rig.boot_to_running()
    delays = []
    for _ in range(5):
        delays.append(crash_and_measure(rig))
        rig.boot_to_running()
        rig.clock.advance(30)
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0]
