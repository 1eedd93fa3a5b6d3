"""What `stop`, `restart` and `start` print while they wait: the phase, the seconds left, and
how the stop ended, from the guest's status rows as the daemon writes them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from reconciler.cli.progress import Progress
from reconciler.status import GuestStatus

T0 = 1_700_000_000.0
RUNNING = GuestStatus(name="vm1", state="running", pid=41, started_at=T0 - 60, boots=1)


def stopping(phase: str, deadline: float) -> GuestStatus:
    return replace(
        RUNNING, state="stopping", stop_phase=phase, stop_deadline=deadline, stop_timeout=120.0
    )


def play(progress: Progress, frames: Sequence[tuple[float, GuestStatus | None]]) -> list[str]:
    """Feed the rows the CLI would read at these clock values; every line it would print."""
    lines: list[str] = []
    for now, row in frames:
        seen = progress.see(row, now)
        lines += seen.lines
        if seen.done:
            lines.append(f"[exit {'0' if seen.ok else '1'}]")
            break
    return lines


def test_stop_of_a_guest_that_ignores_acpi_counts_down_then_says_it_was_forced() -> None:
    acpi = stopping("acpi", T0 + 120)
    poweroff = stopping("poweroff", T0 + 125)
    held = replace(
        RUNNING, state="held", pid=None, started_at=None, last_exit=1,
        last_exit_meaning="poweroff", last_stop="forced-poweroff",
    )  # fmt: skip
    frames = [(T0 + t, acpi) for t in (0.0, 0.2, 5.0, 10.0, 10.2, 19.9, 20.0)]
    frames += [(T0 + 120.2, poweroff), (T0 + 121.0, poweroff), (T0 + 121.2, held)]

    assert play(Progress("vm1", "stop"), frames) == [
        "vm1: stopping: ACPI shutdown requested (power button); forced power-off in 120s",
        "vm1: stopping: ACPI shutdown requested (power button); forced power-off in 110s",
        "vm1: stopping: ACPI shutdown requested (power button); forced power-off in 100s",
        "vm1: stopping: no ACPI shutdown in time: forced power-off; SIGKILL in 5s",
        "vm1: held (forced power-off: no ACPI shutdown within 120s)",
        "[exit 0]",
    ]


def test_stop_of_a_guest_that_obeys_acpi() -> None:
    held = replace(RUNNING, state="held", pid=None, last_exit=1, last_stop="acpi")
    frames = [(T0, stopping("acpi", T0 + 120)), (T0 + 0.4, held)]
    assert play(Progress("vm1", "stop"), frames) == [
        "vm1: stopping: ACPI shutdown requested (power button); forced power-off in 120s",
        "vm1: held (it shut down on ACPI)",
        "[exit 0]",
    ]


def test_stop_of_a_guest_that_was_off_already() -> None:
    held = replace(RUNNING, state="held", pid=None)
    assert play(Progress("vm1", "stop"), [(T0, held)]) == ["vm1: held", "[exit 0]"]


def test_restart_waits_for_a_new_bhyve() -> None:
    starting = replace(RUNNING, state="starting", pid=None)
    again = replace(RUNNING, pid=99, boots=2)
    frames = [
        (T0, stopping("acpi", T0 + 120)),
        (T0 + 0.4, starting),
        (T0 + 0.6, RUNNING),  # a stale read: still the old bhyve
        (T0 + 0.8, again),
    ]
    assert play(Progress("vm1", "restart", old_pid=41), frames) == [
        "vm1: stopping: ACPI shutdown requested (power button); forced power-off in 120s",
        "vm1: starting",
        "vm1: running (pid 99)",
        "[exit 0]",
    ]


def test_start_that_fails_says_why_and_exits_1() -> None:
    failed = replace(
        RUNNING, state="crash-loop", pid=None, last_exit=4, last_exit_meaning="error",
        next_restart_at=T0 + 1.5, restart_streak=1,
    )  # fmt: skip
    frames = [(T0, replace(RUNNING, state="starting", pid=None)), (T0 + 0.3, failed)]
    assert play(Progress("vm1", "start"), frames) == [
        "vm1: starting",
        "vm1: crash-loop: it exited 4 (error), a failure; the next boot is in 1s "
        "(crash backoff after 1 quick failure in a row)",
        "[exit 1]",
    ]


def test_a_guest_that_disappears_ends_the_wait() -> None:
    assert play(Progress("vm1", "stop"), [(T0, None)]) == [
        "vm1: the daemon no longer reports it",
        "[exit 1]",
    ]
