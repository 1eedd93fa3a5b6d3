"""A supervised guest's state as one value, and how a stop escalates, as pure functions.

    Off(why)                 no boot is live: stopped, powered-off, held or error
    Due(at, crash, reboot)   no boot is live; one is due at `at` (crash-loop when `crash`)
    Live(shim, pid, since)   a boot is live: its loader (pid None) or its bhyve
    Stopping(boot, ...)      a live boot is being stopped; `then` says what follows the stop

A stop escalates (DESIGN.md "Removal is graceful"): SIGTERM to bhyve (the ACPI power button)
and to a loader; after the stop timeout `bhyvectl --force-poweroff`; after the kill grace
SIGKILL to the whole boot; after another grace the stop is given up. `escalate` says which of
those is due; the supervisor carries them out. Values in, values out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal

from reconciler.policy import ExitStatus
from reconciler.spec import GuestSpec
from reconciler.status import ExitEntry, GuestStatus
from reconciler.units import parse_size

State = Literal[
    "running",
    "starting",
    "waiting",
    "stopping",
    "stopped",
    "powered-off",
    "crash-loop",
    "held",
    "error",
]
Desired = Literal["running", "stopped", "removed", "shutdown"]
OffReason = Literal["stopped", "powered-off", "held", "error"]
StopPhase = Literal["acpi", "loader", "poweroff", "kill"]
AfterStop = Literal["stopped", "held", "boot"]
# How a stop ended, by the phase it had reached: the guest shut down on ACPI, its loader quit
# on SIGTERM, or it had to be forced off or killed.
StopEnd = Literal["acpi", "loader", "forced-poweroff", "killed"]
_STOP_ENDS: dict[StopPhase, StopEnd] = {
    "acpi": "acpi",
    "loader": "loader",
    "poweroff": "forced-poweroff",
    "kill": "killed",
}


# Restarts by reason (status, metrics): the policy's decision after an exit, or the operator's.
RESTART_REASONS = ("reboot", "crash", "poweroff", "operator")
RESTART_OF = {"reboot": "reboot", "backoff": "crash", "boot": "poweroff"}


@dataclass(frozen=True)
class Off:
    why: OffReason


@dataclass(frozen=True)
class Due:
    at: float
    crash: bool = False  # the crash backoff is running (state crash-loop)
    reboot: bool = False  # the guest rebooted itself: its VM is kept for the loader
    waiting: bool = False  # not ready (a disk not created yet): retried after each pass


@dataclass(frozen=True)
class Live:
    shim_pid: int | None
    pid: int | None  # bhyve's, once it runs
    started_at: float  # when bhyve started, or the boot began while its loader runs


@dataclass(frozen=True)
class Stopping:
    boot: Live
    step: StopPhase
    deadline: float
    timeout: float
    then: AfterStop
    signalled: frozenset[int] = frozenset()


Phase = Off | Due | Live | Stopping


@dataclass(frozen=True)
class Term:
    """SIGTERM to `pid` (bhyve: the ACPI power button; a loader: quit)."""

    pid: int


@dataclass(frozen=True)
class ForcePoweroff:
    """`bhyvectl --force-poweroff`: the guest ignored ACPI for the whole stop timeout."""


@dataclass(frozen=True)
class Kill:
    """SIGKILL to the boot's process group and to each of its processes."""

    pids: tuple[int, ...]
    group: int | None


@dataclass(frozen=True)
class GiveUp:
    """Processes survived SIGKILL: the stop ends without them."""


StopStep = Term | ForcePoweroff | Kill | GiveUp


def escalate(
    stop: Stopping, *, bhyve: int | None, loader: int | None, now: float, grace: float
) -> tuple[Stopping, list[StopStep]]:
    """The stop after looking at it at `now`, with its live `bhyve` and `loader` pids, and
    the steps to carry out, in order."""
    steps: list[StopStep] = []
    signalled = set(stop.signalled)
    for pid in (bhyve, loader):
        if pid is not None and pid not in signalled:
            steps.append(Term(pid))
            signalled.add(pid)
    if bhyve is not None and stop.step == "loader":
        # bhyve started after the stop began: it gets the whole stop_timeout too.
        stop = replace(stop, step="acpi", deadline=now + stop.timeout)
    stop = replace(stop, signalled=frozenset(signalled))
    if now < stop.deadline:
        return stop, steps
    if stop.step == "acpi":
        return replace(stop, step="poweroff", deadline=now + grace), [*steps, ForcePoweroff()]
    if stop.step in ("loader", "poweroff"):
        shim = stop.boot.shim_pid
        pids = tuple(p for p in (bhyve, loader, shim) if p is not None)
        return replace(stop, step="kill", deadline=now + grace), [*steps, Kill(pids, shim)]
    return stop, [*steps, GiveUp()]


def state_of(phase: Phase) -> State:
    if isinstance(phase, Off):
        return phase.why
    if isinstance(phase, Due):
        return "crash-loop" if phase.crash else "waiting" if phase.waiting else "starting"
    if isinstance(phase, Stopping):
        return "stopping"
    return "running" if phase.pid is not None else "starting"


def stop_end(phase: Phase) -> StopEnd | None:
    """How a stop that ends now ended; None when `phase` is not a stop."""
    return _STOP_ENDS[phase.step] if isinstance(phase, Stopping) else None


def describe_exit(exit: ExitStatus) -> str:
    if exit.signal is not None:
        return f"{exit.phase} killed by signal {exit.signal} ({exit.meaning})"
    if exit.code is None:
        return "boot ended without a record (its shim was killed)"
    why = f": {exit.reason}" if exit.reason is not None else ""
    return f"{exit.phase} exited with status {exit.code} ({exit.meaning}){why}"


def status_row(
    name: str,
    phase: Phase,
    *,
    desired: Desired,
    boots: int,
    last_exit: ExitStatus | None,
    last_error: str | None,
    file: str | None,
    spec_error: str | None,
    wall_offset: float,
    spec: GuestSpec | None = None,
    restarts: Mapping[str, int] | None = None,
    shown: GuestSpec | None = None,
    last_stop: StopEnd | None = None,
    streak: int = 0,
    exits: tuple[tuple[float, ExitStatus], ...] = (),
) -> GuestStatus:
    """A supervisor's status row; times move from its clock to the wall clock. `shown` is the
    spec whose CPUs, memory, loader, console and VNC address the row shows (the running boot's,
    else the accepted one); `exits` the recent boot ends with the clock value of each."""
    live = phase if isinstance(phase, Live) else None
    stop = phase if isinstance(phase, Stopping) else None
    return GuestStatus(
        name=name,
        state=state_of(phase),
        desired=desired,
        pid=live.pid if live is not None else None,
        started_at=round(live.started_at + wall_offset, 3) if live is not None else None,
        boots=boots,
        last_exit=None if last_exit is None else last_exit.shell_status,
        last_exit_meaning=None if last_exit is None else last_exit.meaning,
        next_restart_at=round(phase.at + wall_offset, 3)
        if isinstance(phase, Due) and phase.crash
        else None,
        last_error=last_error,
        file=file,
        spec_error=spec_error,
        cpus=shown.cpus if shown is not None else None,
        memory=shown.memory if shown is not None else None,
        memory_bytes=parse_size(spec.memory) if spec is not None else None,
        restarts=dict(restarts or {}),
        loader=shown.loader if shown is not None else None,
        console=shown.console_device if shown is not None else None,
        vnc=shown.graphics.listen if shown is not None and shown.graphics is not None else None,
        stop_phase=stop.step if stop is not None else None,
        stop_deadline=round(stop.deadline + wall_offset, 3) if stop is not None else None,
        stop_timeout=stop.timeout if stop is not None else None,
        last_stop=last_stop,
        restart_streak=streak,
        recent_exits=tuple(
            ExitEntry(round(at + wall_offset, 3), e.shell_status, e.meaning, e.phase)
            for at, e in exits
        ),
    )
