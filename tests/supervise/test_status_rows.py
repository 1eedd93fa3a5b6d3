"""What a supervisor's status row says about its guest: the spec it runs, a stop's phase and
deadline, how the last stop ended, recent exits and the backoff; and that the row object is
rebuilt only when something in it changed."""

from __future__ import annotations

from dataclasses import replace

from supervise_fakes import SupervisorRig, guest

from reconciler.spec import Graphics

TIMEOUT = 30.0
STEP = 0.25


def settle(rig: SupervisorRig, limit: float = 120.0) -> None:
    end = rig.clock.now + limit
    while not rig.sup.settled and rig.clock.now < end:
        rig.clock.advance(STEP)
        rig.sup.poll()


def test_a_running_guest_shows_the_spec_its_boot_runs() -> None:
    uefi = guest(cpus=2, memory="2G", loader="uefi", graphics=Graphics(listen="0.0.0.0:5901"))
    rig = SupervisorRig(uefi, stop_timeout=TIMEOUT)
    rig.boot_to_running()
    row = rig.sup.snapshot()
    assert (row.cpus, row.memory, row.loader) == (2, "2G", "uefi")
    assert (row.console, row.vnc) == ("/dev/nmdm-vm1.1A", "0.0.0.0:5901")

    # An edit that waits for the next boot: the row keeps showing what runs.
    rig.sup.desire(replace(uefi, cpus=4, lifecycle=replace(uefi.lifecycle, on_change="next-boot")))
    assert rig.sup.state == "running"
    assert rig.sup.snapshot().cpus == 2


def test_a_stop_shows_its_phase_and_deadline_then_how_it_ended() -> None:
    rig = SupervisorRig(guest(), stop_timeout=TIMEOUT)
    rig.boot_to_running()
    rig.ops.acpi = False
    t0 = rig.clock.now
    rig.sup.stop()

    row = rig.sup.snapshot()
    assert (row.state, row.stop_phase, row.stop_timeout) == ("stopping", "acpi", TIMEOUT)
    assert row.stop_deadline == t0 + TIMEOUT  # wall offset 0 in this rig
    rig.clock.advance(TIMEOUT)
    rig.sup.poll()
    settle(rig)

    row = rig.sup.snapshot()
    assert (row.state, row.last_stop) == ("held", "forced-poweroff")
    assert (row.stop_phase, row.stop_deadline) == (None, None)
    assert (row.last_exit, row.last_exit_meaning) == (1, "poweroff")


def test_a_guest_that_obeys_acpi_stopped_on_acpi() -> None:
    rig = SupervisorRig(guest(), stop_timeout=TIMEOUT)
    rig.boot_to_running()
    rig.sup.stop()
    assert (rig.sup.state, rig.sup.snapshot().last_stop) == ("held", "acpi")


def test_a_guest_killed_after_the_forced_power_off_says_so() -> None:
    rig = SupervisorRig(guest(), stop_timeout=TIMEOUT)
    rig.boot_to_running()
    rig.ops.acpi = False
    rig.ops.poweroff_works = False
    rig.sup.stop()
    settle(rig)
    assert rig.sup.snapshot().last_stop == "killed"


def test_recent_exits_keep_the_last_five_in_order_with_their_meanings() -> None:
    rig = SupervisorRig(guest(restart="always"), stop_timeout=TIMEOUT)
    ends = [("bhyve", 0), ("bhyve", 3), ("bhyve", 0), ("bhyve", 4), ("bhyve", 0), ("bhyve", 2)]
    for phase, status in ends:
        rig.sup.poll()
        rig.clock.advance(400)  # past any backoff
        rig.sup.poll()
        if rig.sup.state != "running":
            rig.ops.run_loader()
            rig.sup.poll()
            rig.ops.run_bhyve()
            rig.sup.poll()
        rig.ops.end(phase, status)
        rig.sup.poll()
    exits = rig.sup.snapshot().recent_exits
    assert [(e.status, e.meaning) for e in exits] == [
        (3, "triple-fault"),
        (0, "reboot"),
        (4, "error"),
        (0, "reboot"),
        (2, "halt"),
    ]
    assert [e.at for e in exits] == sorted(e.at for e in exits)


def test_a_crash_loop_shows_its_streak() -> None:
    rig = SupervisorRig(guest(), stop_timeout=TIMEOUT)
    rig.boot_to_running()
    rig.ops.end("bhyve", 4)
    rig.sup.poll()
    row = rig.sup.snapshot()
    assert (row.state, row.restart_streak) == ("crash-loop", 1)
    assert row.next_restart_at is not None


def test_the_row_object_is_kept_while_nothing_in_it_changes() -> None:
    rig = SupervisorRig(guest(), stop_timeout=TIMEOUT)
    rig.boot_to_running()
    first = rig.sup.snapshot()
    rig.clock.advance(10)
    rig.sup.poll()
    assert rig.sup.snapshot() is first
    rig.sup.stop()
    assert rig.sup.snapshot() is not first
