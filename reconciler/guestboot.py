"""The OS side of a supervised guest's boot: looking at it, stopping it, destroying its VM.

Functions over the `GuestOps` seam that carry out what the supervisor decided and log it as
structured events; they decide nothing about the guest's lifecycle (that is `supervise.py`)
and hold no state between calls.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass

from reconciler.errors import ReconcilerError
from reconciler.facts import boot_failure
from reconciler.guestops import BootRecord, GuestOps, Logger
from reconciler.guestphase import (
    AfterStop,
    ForcePoweroff,
    GiveUp,
    Kill,
    Live,
    Stopping,
    StopStep,
    Term,
)
from reconciler.policy import ExitContext, ExitStatus


@dataclass(frozen=True)
class Found:
    """What a guest's boot record shows when its supervisor is made: the record with only the
    pids proven to be the guest's, and which of them still run."""

    rec: BootRecord
    live: tuple[int, ...]


@dataclass(frozen=True)
class Running:
    """The boot still runs; `rec` is its record as read now (None: not read, it is steady)."""

    rec: BootRecord | None


@dataclass(frozen=True)
class Ended:
    exit: ExitStatus
    rec: BootRecord


Look = Running | Ended


def find(ops: GuestOps) -> Found:
    rec = ops.trusted(ops.record())
    pids = (rec.shim_pid, rec.loader_pid, rec.bhyve_pid)
    return Found(rec, tuple(p for p in pids if p is not None and ops.alive(p)))


def look(ops: GuestOps, boot: Live, *, steady: bool) -> Look:
    """Has the boot ended? A steady boot (bhyve up, nothing pending) costs one liveness check."""
    if steady and ops.alive(boot.shim_pid or boot.pid or 0):
        return Running(None)
    rec = ops.record()
    if rec.exit is None:
        pids = [p for p in (boot.shim_pid, rec.loader_pid, rec.bhyve_pid) if p is not None]
        if any(ops.alive(p) for p in pids):
            return Running(rec)
        rec = ops.record()  # the shim may have written its exit as it ended
    # Without an exit line the shim itself was killed.
    return Ended(rec.exit or ExitStatus(code=None, signal=None), rec)


def in_context(ops: GuestOps, exit: ExitStatus, *, stop_requested: bool, now: bool) -> ExitStatus:
    """`exit` with what a status 1 is judged by (policy.ExitContext): whether we asked for the
    stop, whether the VM still exists (only when the exit is seen as it happens, `now`: an old
    record's VM may have been destroyed since), and what the program printed that says it
    failed. Other statuses mean one thing and cost no look."""
    if exit.code != 1:
        return exit
    try:
        printed = boot_failure(ops.boot_output(), exit.phase)
    except OSError:
        printed = None
    vm = ops.vm_exists() if now else None
    return exit.with_context(ExitContext(stop_requested, vm, printed))


def live_pid(ops: GuestOps, pid: int | None) -> int | None:
    return pid if pid is not None and ops.alive(pid) else None


def begin_stop(
    ops: GuestOps,
    log: Logger,
    name: str,
    boot: Live,
    *,
    now: float,
    timeout: float,
    grace: float,
    then: AfterStop,
) -> tuple[Stopping, BootRecord]:
    """The stop as it begins: ACPI when bhyve runs, else the loader's SIGTERM. What it leads
    to is noted in the record first, so a daemon killed mid-stop is followed by one that
    finishes it instead of booting a second bhyve."""
    rec = ops.record()
    if live_pid(ops, rec.bhyve_pid) is not None:
        stop = Stopping(boot, "acpi", now + timeout, timeout, then)
    else:
        stop = Stopping(boot, "loader", now + grace, timeout, then)
    ops.set_outcome("held" if then == "held" else "stopped")
    log.info("guest.stopping", guest=name, pid=rec.bhyve_pid, stop_timeout=timeout, phase=stop.step)
    return stop, rec


def carry_out(
    ops: GuestOps, log: Logger, name: str, stop: Stopping, steps: list[StopStep], rec: BootRecord
) -> bool:
    """Carry out a stop's due steps; True when the stop is given up (SIGKILL did not end it)."""
    bhyve, loader = rec.bhyve_pid, rec.loader_pid
    for step in steps:
        if isinstance(step, Term):
            ops.signal(step.pid, signal.SIGTERM)
        elif isinstance(step, ForcePoweroff):
            log.warning("guest.forced_poweroff", guest=name, pid=bhyve, after=stop.timeout)
            try:
                ops.force_poweroff()
            except ReconcilerError as exc:
                log.warning("guest.force_poweroff_failed", guest=name, error=str(exc))
        elif isinstance(step, Kill):
            log.warning("guest.killed", guest=name, pid=bhyve, loader_pid=loader)
            if step.group is not None:
                ops.signal_group(step.group, signal.SIGKILL)
            for pid in step.pids:
                ops.signal(pid, signal.SIGKILL)
        elif isinstance(step, GiveUp):
            log.error("guest.stop_abandoned", guest=name, pid=bhyve)
            return True
    return False


def destroy_vm(ops: GuestOps, log: Logger, name: str, why: str) -> str | None:
    """`bhyvectl --destroy` when the VM exists; the error, if that failed."""
    try:
        if ops.vm_exists():
            ops.destroy()
            log.info("guest.destroyed", guest=name, reason=why)
    except ReconcilerError as exc:
        log.error("guest.destroy_failed", guest=name, error=str(exc))
        return str(exc)
    return None
