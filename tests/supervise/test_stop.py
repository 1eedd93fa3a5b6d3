"""Stopping: ACPI, then force-poweroff after stop_timeout, then SIGKILL, then destroy."""

from __future__ import annotations

from structlog.testing import capture_logs
from supervise_fakes import FakeClock, SupervisorRig, guest

TIMEOUT = 30.0
GRACE = 5.0  # supervise.KILL_GRACE


STEP = 0.25  # how often the fake daemon polls; an exit is seen at the next poll


def run_until_settled(rig: SupervisorRig, step: float = STEP, limit: float = 600.0) -> None:
    end = rig.clock.now + limit
    while not rig.sup.settled and rig.clock.now < end:
        rig.clock.advance(step)
        rig.sup.poll()


def test_acpi_guest_stops_on_sigterm_and_is_destroyed() -> None:
    rig = SupervisorRig(guest(), stop_timeout=TIMEOUT)
    pid = rig.boot_to_running()
    rig.sup.stop()
    assert rig.ops.calls[1:] == [
        (rig.clock.now, "signal-SIGTERM", pid),
        (rig.clock.now, "destroy", None),
    ]
    assert rig.state() == "held"
    assert rig.ops.rec.outcome == "held"
    assert rig.sup.snapshot().last_exit_meaning == "poweroff"


def test_guest_ignoring_acpi_is_forced_off_after_stop_timeout_exactly() -> None:
    rig = SupervisorRig(guest(), stop_timeout=TIMEOUT)
    pid = rig.boot_to_running()
    rig.ops.acpi = False
    t0 = rig.clock.now
    with capture_logs() as logs:
        rig.sup.stop()
        assert rig.state() == "stopping"
        assert rig.sup.next_deadline() == t0 + TIMEOUT
        run_until_settled(rig)
    assert rig.ops.times("signal-SIGTERM") == [t0]
    assert rig.ops.times("force-poweroff") == [t0 + TIMEOUT]
    assert rig.ops.times("destroy") == [t0 + TIMEOUT + STEP]
    assert "signal-SIGKILL" not in rig.ops.names()
    assert rig.state() == "held"
    forced = [e for e in logs if e["event"] == "guest.forced_poweroff"]
    assert [(e["guest"], e["pid"], e["after"]) for e in forced] == [("vm1", pid, TIMEOUT)]


def test_full_escalation_sigterm_poweroff_sigkill_destroy() -> None:
    rig = SupervisorRig(guest(), stop_timeout=TIMEOUT)
    pid = rig.boot_to_running()
    shim = rig.ops.rec.shim_pid
    rig.ops.acpi = False
    rig.ops.poweroff_works = False
    t0 = rig.clock.now
    rig.sup.stop()
    run_until_settled(rig)
    assert [(t - t0, what, arg) for t, what, arg in rig.ops.calls[1:]] == [
        (0.0, "signal-SIGTERM", pid),
        (TIMEOUT, "force-poweroff", None),
        (TIMEOUT + GRACE, "group-SIGKILL", shim),
        (TIMEOUT + GRACE, "signal-SIGKILL", pid),
        (TIMEOUT + GRACE, "signal-SIGKILL", shim),
        (TIMEOUT + GRACE + STEP, "destroy", None),
    ]
    assert rig.state() == "held"


def test_the_guests_own_stop_timeout_wins_over_the_default() -> None:
    rig = SupervisorRig(guest(stop_timeout=7.0), stop_timeout=TIMEOUT)
    rig.boot_to_running()
    rig.ops.acpi = False
    t0 = rig.clock.now
    rig.sup.stop()
    run_until_settled(rig)
    assert rig.ops.times("force-poweroff") == [t0 + 7.0]


def test_a_stop_always_ends_even_when_nothing_dies() -> None:
    rig = SupervisorRig(guest(), stop_timeout=TIMEOUT)
    rig.boot_to_running()
    rig.ops.acpi = rig.ops.poweroff_works = rig.ops.dies_on_kill = False
    t0 = rig.clock.now
    with capture_logs() as logs:
        rig.sup.stop()
        run_until_settled(rig)
    assert rig.state() == "held"
    assert rig.clock.now == t0 + TIMEOUT + 2 * GRACE
    assert rig.ops.times("destroy") == [t0 + TIMEOUT + 2 * GRACE]
    assert "guest.stop_abandoned" in [e["event"] for e in logs]
    assert rig.sup.snapshot().last_error is not None


def test_guest_in_its_loader_gets_sigterm_then_sigkill() -> None:
    rig = SupervisorRig(guest(), stop_timeout=TIMEOUT)
    rig.sup.poll()
    loader = rig.ops.run_loader()
    rig.ops.loader_obeys_term = False
    t0 = rig.clock.now
    rig.sup.stop()
    run_until_settled(rig)
    assert [(t - t0, what) for t, what, arg in rig.ops.calls[1:] if arg in (loader, None)] == [
        (0.0, "signal-SIGTERM"),
        (GRACE, "signal-SIGKILL"),
        (GRACE + STEP, "destroy"),
    ]
    assert "force-poweroff" not in rig.ops.names()
    assert rig.state() == "held"


def test_loader_that_obeys_sigterm_ends_the_stop_at_once() -> None:
    rig = SupervisorRig(guest(), stop_timeout=TIMEOUT)
    rig.sup.poll()
    rig.ops.run_loader()
    rig.sup.stop()
    assert rig.state() == "held"
    assert rig.ops.names() == ["spawn", "signal-SIGTERM", "destroy"]


def test_bhyve_starting_during_a_loader_stop_gets_its_sigterm_and_timeout() -> None:
    rig = SupervisorRig(guest(), stop_timeout=TIMEOUT)
    rig.sup.poll()
    rig.ops.run_loader()
    rig.ops.loader_obeys_term = False
    rig.sup.stop()
    rig.clock.advance(1.0)
    rig.ops.acpi = False
    pid = rig.ops.run_bhyve()  # the loader finished just as the stop began
    t1 = rig.clock.now
    rig.sup.poll()
    assert rig.ops.calls[-1] == (t1, "signal-SIGTERM", pid)
    assert rig.sup.next_deadline() == t1 + TIMEOUT


def test_ten_guests_ignoring_acpi_stop_in_one_stop_timeout() -> None:
    clock = FakeClock()
    rigs = [SupervisorRig(guest(f"vm{i}"), stop_timeout=TIMEOUT, clock=clock) for i in range(10)]
    for rig in rigs:
        rig.boot_to_running()
        rig.ops.acpi = False
    t0 = clock.now
    for rig in rigs:
        rig.sup.stop()  # returns at once: no waiting inside a supervisor
    assert clock.now == t0
    while not all(r.sup.settled for r in rigs):
        clock.advance(STEP)
        for rig in rigs:
            rig.sup.poll()
    assert clock.now == t0 + TIMEOUT + STEP
    assert all(r.ops.times("force-poweroff") == [t0 + TIMEOUT] for r in rigs)


def test_file_saying_stopped_stops_gracefully_and_a_later_running_boots() -> None:
    rig = SupervisorRig(guest(), stop_timeout=TIMEOUT)
    pid = rig.boot_to_running()
    rig.sup.desire(guest(state="stopped"))
    assert rig.ops.names() == ["spawn", "signal-SIGTERM", "destroy"]
    assert rig.ops.calls[1][2] == pid
    assert rig.state() == "stopped"
    rig.clock.advance(60)
    rig.sup.poll()
    assert rig.state() == "stopped"
    rig.sup.desire(guest())
    assert rig.ops.names()[-1] == "spawn"
    assert rig.state() == "starting"


def test_removed_file_stops_gracefully_destroys_and_forgets() -> None:
    rig = SupervisorRig(guest(), stop_timeout=TIMEOUT)
    rig.boot_to_running()
    rig.ops.acpi = False
    rig.sup.desire(None)
    assert not rig.sup.finished
    run_until_settled(rig, step=1.0)
    assert rig.ops.names()[-3:] == ["force-poweroff", "destroy", "forget"]
    assert rig.sup.finished
    assert rig.sup.snapshot().desired == "removed"


def test_removed_file_of_a_guest_that_is_off_just_forgets_it() -> None:
    rig = SupervisorRig(guest())
    rig.boot_to_running()
    rig.ops.end("bhyve", 1)
    rig.sup.poll()
    rig.sup.desire(None)
    assert rig.ops.names() == ["spawn", "destroy", "forget"]
    assert rig.sup.finished


def test_daemon_shutdown_stops_without_holding_and_boots_nothing() -> None:
    rig = SupervisorRig(guest(restart="always"), stop_timeout=TIMEOUT)
    rig.boot_to_running()
    rig.sup.shutdown()
    rig.clock.advance(60)
    rig.sup.poll()
    assert rig.state() == "stopped"
    assert rig.ops.rec.outcome == "stopped"  # the next daemon boots it again
    assert rig.ops.names() == ["spawn", "signal-SIGTERM", "destroy"]


def test_guest_that_crashes_while_stopping_just_ends_the_stop() -> None:
    rig = SupervisorRig(guest(), stop_timeout=TIMEOUT)
    rig.boot_to_running()
    rig.ops.acpi = False
    rig.sup.stop()
    rig.clock.advance(2)
    rig.ops.end("bhyve", 4)
    rig.sup.poll()
    assert rig.state() == "held"
    assert rig.sup.snapshot().next_restart_at is None
