"""One supervisor per guest: boots it, watches the boot, applies the restart policy, stops it.

A state machine driven by the daemon: it never sleeps, never starts a thread and never calls the
OS itself. Every process and VM operation goes through a `GuestOps` object (the real one is
`reconciler/host/guests.py`), time comes from an injected clock, and timers are deadlines that
`poll()` checks, so many guests stop in parallel and tests run on a fake clock.

How the daemon drives it:

    sup = GuestSupervisor(name, spec=last_good_spec_or_None, ops=ShimGuestOps(...),
                          prepare_boot=..., clock=time.monotonic, log=structlog.get_logger(),
                          stop_timeout=config.stop_timeout)
    sup.poll()                  # right away (adopts or boots), then a few times a second
    sup.desire(spec)            # every pass: the guest's last good spec; None once its file is gone
    sup.start() / sup.stop() / sup.restart()   # operator commands; CommandRefused if not allowed
    sup.shutdown()              # daemon exit: graceful stop, no hold; keep polling until
                                # `sup.settled` (no boot live) for every guest
    sup.snapshot()              # for status.json; times are readings of `clock`
    sup.finished                # True once a removed guest is stopped: drop the supervisor
    sup.next_deadline()         # the next timer (stop escalation, restart), to bound a sleep
    sup.stop_timeout = t        # SIGHUP: the config's new default, for stops that begin later

Behaviour an admin relies on (the rest is in `reconciler/policy.py`):
- A supervisor constructed while the guest's shim or bhyve still runs adopts it (never a second
  bhyve); an exit recorded while no daemon ran is acted on at the first `poll()`. A spec edited
  while no daemon ran is taken as the running guest's spec: it applies at the next boot.
- `on_change = "restart"`: a change to what boots the guest (anything but `restart`,
  `on_change`, `stop_timeout`, `order`, `state`) stops it gracefully and boots the new spec;
  `"next-boot"`: the guest keeps running, and its next reboot uses the new spec. That reboot
  destroys the VM first, because the new spec may change its CPUs or memory.
- A held, powered-off, failed or crash-looping guest boots again when its file changes, or on
  `start`. `start` refuses a guest whose file says `state = "stopped"` (the file wins).
- A boot that cannot even be prepared or spawned (a missing disk, a tap not there yet) is
  retried with the crash backoff whatever `restart` says: it is the host's failure, not the
  guest's.
- Stop: SIGTERM to bhyve (ACPI power button), after `stop_timeout` `bhyvectl --force-poweroff`,
  after `kill_grace` SIGKILL to the whole boot (its process group), then `bhyvectl --destroy`.
  A guest still in its loader gets SIGTERM, then SIGKILL after `kill_grace`. A stop always ends.
- What a stop leads to is written to the record when it begins (`held` or `stopped`), so a daemon
  killed mid-stop is followed by one that finishes the stop instead of booting the guest again.
"""

from __future__ import annotations

import dataclasses
import signal
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from reconciler.errors import ReconcilerError
from reconciler.policy import (
    ExitStatus,
    RestartHistory,
    backoff_delay,
    decide,
    next_restart,
)
from reconciler.spec import GuestSpec

State = Literal[
    "running", "starting", "stopping", "stopped", "powered-off", "crash-loop", "held", "error"
]
Desired = Literal["running", "stopped", "removed"]
StopPhase = Literal["acpi", "loader", "poweroff", "kill"]

KILL_GRACE = 5.0  # seconds after force-poweroff (or a loader's SIGTERM) before SIGKILL

_LIVE: frozenset[State] = frozenset({"running", "starting", "stopping"})
_RESTARTABLE: frozenset[State] = frozenset({"held", "powered-off", "error", "crash-loop"})


class CommandRefused(ReconcilerError):
    """An operator command that the guest's file or state does not allow."""


class BootPlan(Protocol):
    """What one boot runs: `reconciler.bhyve.BootCommands` has this shape."""

    @property
    def loader(self) -> tuple[str, ...] | None: ...

    @property
    def bhyve(self) -> tuple[str, ...]: ...

    @property
    def files(self) -> tuple[tuple[str, str], ...]: ...


@dataclass(frozen=True)
class BootRecord:
    """What the shim recorded for the guest's last boot, plus the supervisor's own note."""

    shim_pid: int | None = None
    loader_pid: int | None = None
    bhyve_pid: int | None = None
    exit: ExitStatus | None = None
    outcome: str | None = None  # the supervisor's note: held, stopped, powered-off, ...
    bhyve_age: float | None = None  # seconds since bhyve started, for an adopted guest's uptime


class GuestOps(Protocol):
    """Every OS operation on one guest's processes and VM."""

    def spawn(self, boot: BootPlan) -> int:
        """Write the boot's files, clear the last record, start the shim; its pid."""
        ...

    def record(self) -> BootRecord: ...

    def alive(self, pid: int) -> bool: ...

    def signal(self, pid: int, sig: int) -> bool: ...

    def signal_group(self, pgid: int, sig: int) -> bool: ...

    def vm_exists(self) -> bool: ...

    def destroy(self) -> None:
        """`bhyvectl --vm=NAME --destroy`; raises `HostCommandError`."""
        ...

    def force_poweroff(self) -> None:
        """`bhyvectl --vm=NAME --force-poweroff`; raises `HostCommandError`."""
        ...

    def set_outcome(self, outcome: str) -> None: ...

    def forget(self) -> None:
        """Remove the guest's record: it is gone for good."""
        ...


class Logger(Protocol):
    def info(self, event: str, **fields: object) -> object: ...

    def warning(self, event: str, **fields: object) -> object: ...

    def error(self, event: str, **fields: object) -> object: ...


@dataclass(frozen=True)
class GuestSnapshot:
    """One status row. `started_at` and `next_restart_at` are readings of the supervisor's clock."""

    name: str
    state: State
    desired: Desired
    pid: int | None
    started_at: float | None
    boots: int
    last_exit: ExitStatus | None
    next_restart_at: float | None
    last_error: str | None

    @property
    def last_exit_status(self) -> int | None:
        return None if self.last_exit is None else self.last_exit.shell_status

    @property
    def last_exit_meaning(self) -> str | None:
        return None if self.last_exit is None else self.last_exit.meaning


@dataclass
class _Stop:
    phase: StopPhase
    deadline: float
    timeout: float
    signalled: set[int] = dataclasses.field(default_factory=set)


def boot_key(spec: GuestSpec) -> GuestSpec:
    """The spec with the fields that do not change what boots blanked out."""
    return spec.boot_key


class GuestSupervisor:
    def __init__(
        self,
        name: str,
        *,
        spec: GuestSpec | None,
        ops: GuestOps,
        prepare_boot: Callable[[GuestSpec], BootPlan],
        clock: Callable[[], float],
        log: Logger,
        stop_timeout: float,
        kill_grace: float = KILL_GRACE,
    ) -> None:
        self.name = name
        self._ops = ops
        self._prepare_boot = prepare_boot
        self._clock = clock
        self._log = log
        self.stop_timeout = stop_timeout  # the config's; a spec's own stop_timeout wins
        self._kill_grace = kill_grace

        self._spec = spec
        self._desired: Desired = _desired_of(spec)
        self._held = False
        self._shutting_down = False
        self.finished = False

        self._state: State = "stopped"
        self._shim_pid: int | None = None
        self._pid: int | None = None
        self._started_at: float | None = None
        self._running_since = 0.0  # start of the current boot chain (reboots do not break it)
        self._booted_key: GuestSpec | None = None
        self._boots = 0
        self._history = RestartHistory()
        self._restart_at: float | None = None
        self._last_exit: ExitStatus | None = None
        self._last_error: str | None = None
        self._stop: _Stop | None = None

        # Set by adoption, acted on at the first poll() (which has the whole picture).
        self._pending_exit: ExitStatus | None = None
        self._pending_finish = False
        self._pending_stop = False
        self._check_leftover_vm = False
        self._adopt(clock())

    # ---- inputs ------------------------------------------------------------------------

    def desire(self, spec: GuestSpec | None) -> None:
        """The guest's file as it stands (its last good spec), or None once it is gone."""
        now = self._clock()
        self._catch_up(now)
        previous, self._spec = self._spec, spec
        self._desired = _desired_of(spec)
        if spec is None:
            self._restart_at = None
            if self._state in _LIVE and self._stop is None:
                self._begin_stop(now)
        elif spec != previous:
            self._on_spec_change(spec, now)
        self._step(now)

    def start(self) -> None:
        """Operator `start`: boot now a guest that is off, held, failed or crash-looping."""
        self._refuse_unless_wanted("start")
        now = self._clock()
        self._catch_up(now)
        self._held = False
        if self._state == "stopping":
            self._ops.set_outcome("stopped")
        elif self._state not in _LIVE:
            self._history = RestartHistory()
            self._boot(now)
        self._step(now)

    def stop(self) -> None:
        """Operator `stop`: graceful stop, then `held` until `start` or a change to the file."""
        now = self._clock()
        self._catch_up(now)
        self._held = True
        self._restart_at = None
        if self._state in _LIVE:
            if self._stop is None:
                self._begin_stop(now)
            else:
                self._ops.set_outcome("held")
        elif self._desired == "running":
            self._go_idle("held")
        self._step(now)

    def restart(self) -> None:
        """Operator `restart`: graceful stop, then boot; boots at once a guest that is off."""
        self._refuse_unless_wanted("restart")
        now = self._clock()
        self._catch_up(now)
        self._held = False
        if self._state in _LIVE:
            if self._stop is None:
                self._begin_stop(now)
            else:
                self._ops.set_outcome("stopped")
        else:
            self._history = RestartHistory()
            self._boot(now)
        self._step(now)

    def shutdown(self) -> None:
        """The daemon exits: stop gracefully, boot nothing more, hold nothing."""
        now = self._clock()
        self._catch_up(now)
        self._shutting_down = True
        self._restart_at = None
        if self._state in _LIVE and self._stop is None:
            self._begin_stop(now)
        self._step(now)

    def poll(self) -> None:
        """Check the boot record and the timers; call a few times a second and on events."""
        self._step(self._clock())

    # ---- outputs -----------------------------------------------------------------------

    @property
    def state(self) -> State:
        return self._state

    @property
    def settled(self) -> bool:
        """No boot of this guest is live (what a daemon waits for before it exits)."""
        return self._state not in _LIVE

    def next_deadline(self) -> float | None:
        if self._stop is not None:
            return self._stop.deadline
        if self._state == "crash-loop":
            return self._restart_at
        return None

    def snapshot(self) -> GuestSnapshot:
        return GuestSnapshot(
            name=self.name,
            state=self._state,
            desired=self._desired,
            pid=self._pid,
            started_at=self._started_at if self._state in _LIVE else None,
            boots=self._boots,
            last_exit=self._last_exit,
            next_restart_at=self._restart_at if self._state == "crash-loop" else None,
            last_error=self._last_error,
        )

    # ---- the machine -------------------------------------------------------------------

    def _adopt(self, now: float) -> None:
        self._running_since = now
        rec = self._ops.record()
        live_pids = [p for p in (rec.shim_pid, rec.loader_pid, rec.bhyve_pid) if p is not None]
        if rec.exit is None and any(self._ops.alive(p) for p in live_pids):
            self._shim_pid = rec.shim_pid
            bhyve_live = rec.bhyve_pid is not None and self._ops.alive(rec.bhyve_pid)
            self._pid = rec.bhyve_pid if bhyve_live else None
            self._state = "running" if bhyve_live else "starting"
            self._started_at = now - (rec.bhyve_age or 0.0)
            self._running_since = self._started_at
            self._boots = 1
            if self._spec is not None:
                self._booted_key = boot_key(self._spec)
            if rec.outcome in ("held", "stopped"):
                self._held = rec.outcome == "held"
                self._pending_stop = True
            self._log.info(
                "guest.adopted",
                guest=self.name,
                pid=self._pid,
                shim_pid=self._shim_pid,
                state=self._state,
            )
            return
        if rec.outcome in ("held", "stopped"):
            self._held = rec.outcome == "held"
            self._last_exit = rec.exit
            self._pending_finish = True
        elif rec.outcome is not None:
            self._restore(rec.outcome, rec.exit, now)
        elif rec.exit is not None or rec.shim_pid is not None:
            # Ended while no daemon ran; without an exit line the shim itself was killed.
            self._pending_exit = rec.exit or ExitStatus(code=None, signal=None)

    def _restore(self, outcome: str, exit: ExitStatus | None, now: float) -> None:
        self._last_exit = exit
        self._check_leftover_vm = True
        word, _, count = outcome.partition(" ")
        if word == "crash-loop":
            streak = int(count) if count.isdigit() else 1
            self._history = RestartHistory(streak)
            self._state = "crash-loop"
            self._restart_at = now + backoff_delay(max(streak - 1, 0))
        elif word in ("powered-off", "error"):
            self._state = "powered-off" if word == "powered-off" else "error"

    def _step(self, now: float) -> None:
        if self.finished:
            return
        self._catch_up(now)
        if self._state in _LIVE:
            if self._stop is None and not self._wants_running():
                self._begin_stop(now)  # e.g. adopted, but its file is gone or says stopped
            self._watch(now)
            return
        if self._desired == "removed":
            self._retire()
        elif not self._wants_running():
            return
        elif self._state == "stopped" or (
            self._state == "crash-loop" and self._restart_at is not None and now >= self._restart_at
        ):
            self._boot(now)

    def _catch_up(self, now: float) -> None:
        """Act on what adoption found, once, before anything else happens."""
        if self._pending_stop:
            self._pending_stop = False
            self._begin_stop(now)
        if self._pending_exit is not None:
            exit, self._pending_exit = self._pending_exit, None
            self._ended(exit, now, self._ops.record())
        if self._pending_finish:
            self._pending_finish = False
            self._finish_stop(now)
        if self._check_leftover_vm:
            self._check_leftover_vm = False
            self._destroy_vm("leftover")

    def _wants_running(self) -> bool:
        return self._desired == "running" and not self._held and not self._shutting_down

    def _on_spec_change(self, spec: GuestSpec, now: float) -> None:
        """The file changed: it overrides a hold, and may restart a running guest."""
        self._held = False
        if self._desired == "stopped":
            self._restart_at = None
            if self._state in _LIVE:
                if self._stop is None:
                    self._begin_stop(now)
            elif self._state != "stopped":
                self._go_idle("stopped")
            return
        if self._state in _RESTARTABLE:
            self._history = RestartHistory()
            self._boot(now)
        elif self._state in ("running", "starting") and self._booted_key is None:
            self._booted_key = boot_key(spec)
        elif (
            self._state in ("running", "starting")
            and spec.lifecycle.on_change == "restart"
            and boot_key(spec) != self._booted_key
        ):
            self._log.info("guest.spec_changed", guest=self.name, on_change="restart")
            self._begin_stop(now)

    def _boot(self, now: float, *, reboot: bool = False) -> None:
        spec = self._spec
        if spec is None or not self._wants_running():
            return
        key = boot_key(spec)
        try:
            if reboot and self._booted_key is not None and key != self._booted_key:
                self._ops.destroy()  # the next-boot spec may change the VM's CPUs or memory
                reboot = False
            elif not reboot and self._ops.vm_exists():
                self._ops.destroy()  # stale: no bhyve of ours runs for it
            plan = self._prepare_boot(spec)
            shim_pid = self._ops.spawn(plan)
        except Exception as exc:  # any failure to boot is reported, never fatal to the daemon
            self._last_error = str(exc)
            self._log.error("guest.boot_failed", guest=self.name, error=str(exc))
            self._schedule_restart(now, clean=False, running_since=now)
            return
        self._boots += 1
        self._booted_key = key
        self._shim_pid = shim_pid
        self._pid = None
        self._restart_at = None
        if not reboot:
            self._running_since = now
        self._state = "starting"
        self._log.info(
            "guest.booting",
            guest=self.name,
            boot=self._boots,
            reboot=reboot,
            loader=plan.loader[0] if plan.loader else None,
            shim_pid=shim_pid,
        )

    def _watch(self, now: float) -> None:
        """Look at the live boot: has bhyve started, has the boot ended, is a timer due?"""
        steady = self._state == "running" and self._stop is None and self._pid is not None
        if steady and self._ops.alive(self._shim_pid or self._pid or 0):
            return  # the common case costs one liveness check
        rec = self._ops.record()
        exit = rec.exit
        if exit is None:
            pids = [p for p in (self._shim_pid, rec.loader_pid, rec.bhyve_pid) if p is not None]
            if any(self._ops.alive(p) for p in pids):
                self._note_bhyve(rec, now)
                if self._stop is not None:
                    self._advance_stop(rec, now)
                return
            rec = self._ops.record()  # the shim may have written its exit as it ended
            exit = rec.exit or ExitStatus(code=None, signal=None)
        self._ended(exit, now, rec)

    def _note_bhyve(self, rec: BootRecord, now: float) -> None:
        if rec.bhyve_pid is None or rec.bhyve_pid == self._pid:
            return
        if not self._ops.alive(rec.bhyve_pid):
            return
        self._pid = rec.bhyve_pid
        self._started_at = now
        self._last_error = None
        if self._state == "starting":
            self._state = "running"
        self._log.info("guest.started", guest=self.name, pid=self._pid, boot=self._boots)

    def _ended(self, exit: ExitStatus, now: float, rec: BootRecord) -> None:
        pid = rec.bhyve_pid if exit.phase == "bhyve" else rec.loader_pid
        self._last_exit = exit
        self._log.info(
            "guest.exited",
            guest=self.name,
            pid=pid or self._pid,
            status=exit.shell_status,
            signal=exit.signal,
            meaning=exit.meaning,
            phase=exit.phase,
        )
        self._pid = None
        self._shim_pid = None
        if self._stop is not None or not self._wants_running() or self._spec is None:
            self._finish_stop(now)
            return
        decision = decide(exit, self._spec.lifecycle.restart)
        if decision.action == "reboot":
            self._boot(now, reboot=True)
            return
        self._destroy_vm("exited")
        if decision.action == "stay-off":
            self._go_idle("powered-off")
        elif decision.action == "boot":
            self._schedule_restart(now, clean=True, running_since=self._running_since)
        else:
            self._last_error = _describe(exit)
            if decision.action == "give-up":
                self._go_idle("error")
            else:
                self._schedule_restart(now, clean=False, running_since=self._running_since)

    def _schedule_restart(self, now: float, *, clean: bool, running_since: float) -> None:
        delay, self._history = next_restart(
            self._history, running_since=running_since, now=now, clean=clean
        )
        if delay <= 0:
            self._boot(now)
            return
        self._state = "crash-loop"
        self._pid = None
        self._restart_at = now + delay
        self._ops.set_outcome(f"crash-loop {self._history.streak}")
        self._log.warning(
            "guest.restart_scheduled", guest=self.name, delay=delay, streak=self._history.streak
        )

    # ---- stopping ----------------------------------------------------------------------

    def _stop_timeout(self) -> float:
        if self._spec is not None and self._spec.lifecycle.stop_timeout is not None:
            return self._spec.lifecycle.stop_timeout
        return self.stop_timeout

    def _begin_stop(self, now: float) -> None:
        rec = self._ops.record()
        timeout = self._stop_timeout()
        bhyve_live = rec.bhyve_pid is not None and self._ops.alive(rec.bhyve_pid)
        if bhyve_live:
            self._stop = _Stop("acpi", now + timeout, timeout)
        else:
            self._stop = _Stop("loader", now + self._kill_grace, timeout)
        self._state = "stopping"
        self._restart_at = None
        self._ops.set_outcome("held" if self._held else "stopped")
        self._log.info(
            "guest.stopping",
            guest=self.name,
            pid=rec.bhyve_pid,
            stop_timeout=timeout,
            phase=self._stop.phase,
        )
        self._advance_stop(rec, now)

    def _advance_stop(self, rec: BootRecord, now: float) -> None:
        stop = self._stop
        assert stop is not None
        bhyve = self._live(rec.bhyve_pid)
        if bhyve is not None and bhyve not in stop.signalled:
            self._ops.signal(bhyve, signal.SIGTERM)
            stop.signalled.add(bhyve)
            if stop.phase == "loader":
                # bhyve started after the stop began: it gets the whole stop_timeout too.
                stop.phase, stop.deadline = "acpi", now + stop.timeout
        loader = self._live(rec.loader_pid)
        if loader is not None and loader not in stop.signalled:
            self._ops.signal(loader, signal.SIGTERM)
            stop.signalled.add(loader)
        if now < stop.deadline:
            return
        if stop.phase == "acpi":
            self._log.warning(
                "guest.forced_poweroff", guest=self.name, pid=bhyve, after=stop.timeout
            )
            try:
                self._ops.force_poweroff()
            except ReconcilerError as exc:
                self._log.warning("guest.force_poweroff_failed", guest=self.name, error=str(exc))
            stop.phase, stop.deadline = "poweroff", now + self._kill_grace
        elif stop.phase in ("loader", "poweroff"):
            self._log.warning("guest.killed", guest=self.name, pid=bhyve, loader_pid=loader)
            if self._shim_pid is not None:
                self._ops.signal_group(self._shim_pid, signal.SIGKILL)
            for pid in (bhyve, loader, self._shim_pid):
                if pid is not None:
                    self._ops.signal(pid, signal.SIGKILL)
            stop.phase, stop.deadline = "kill", now + self._kill_grace
        else:
            self._last_error = "processes survived SIGKILL"
            self._log.error("guest.stop_abandoned", guest=self.name, pid=bhyve)
            self._pid = None
            self._shim_pid = None
            self._finish_stop(now)

    def _finish_stop(self, now: float) -> None:
        self._stop = None
        self._destroy_vm("stopped")
        if self._desired == "removed":
            self._retire()
            return
        if self._wants_running():
            self._log.info("guest.stopped", guest=self.name, then="boot")
            self._boot(now)
            return
        target: State = "held" if self._held and self._desired == "running" else "stopped"
        self._log.info("guest.stopped", guest=self.name, then=target)
        self._go_idle(target)

    def _retire(self) -> None:
        self._destroy_vm("removed")
        self._ops.forget()
        self._state = "stopped"
        self.finished = True
        self._log.info("guest.removed", guest=self.name)

    # ---- small helpers -----------------------------------------------------------------

    def _live(self, pid: int | None) -> int | None:
        return pid if pid is not None and self._ops.alive(pid) else None

    def _go_idle(self, state: State) -> None:
        self._state = state
        self._pid = None
        self._shim_pid = None
        self._restart_at = None
        self._ops.set_outcome(state)

    def _destroy_vm(self, why: str) -> None:
        try:
            if self._ops.vm_exists():
                self._ops.destroy()
                self._log.info("guest.destroyed", guest=self.name, reason=why)
        except ReconcilerError as exc:
            self._last_error = str(exc)
            self._log.error("guest.destroy_failed", guest=self.name, error=str(exc))

    def _refuse_unless_wanted(self, command: str) -> None:
        if self._desired == "removed":
            raise CommandRefused(f"{self.name}: {command}: its file is gone")
        if self._desired == "stopped":
            raise CommandRefused(
                f'{self.name}: {command}: its file says state = "stopped"; edit the file'
            )


def _desired_of(spec: GuestSpec | None) -> Desired:
    if spec is None:
        return "removed"
    return "running" if spec.lifecycle.state == "running" else "stopped"


def _describe(exit: ExitStatus) -> str:
    if exit.signal is not None:
        return f"{exit.phase} killed by signal {exit.signal} ({exit.meaning})"
    if exit.code is None:
        return "boot ended without a record (its shim was killed)"
    return f"{exit.phase} exited with status {exit.code} ({exit.meaning})"
