"""One supervisor per guest: boots it, watches the boot, applies the restart policy, stops it.

A state machine driven by the daemon: it never sleeps, never starts a thread and never calls the
OS itself. Every process and VM operation goes through a `GuestOps` object (the real one is
`reconciler/host/guests.py`), time comes from an injected clock, timings from `Timings`, and
timers are deadlines that `poll()` checks, so many guests stop in parallel and tests run on a
fake clock.

Its state is one value, `Phase`:

    Off(why)                 no boot is live: stopped, powered-off, held or error
    Due(at, crash, reboot)   no boot is live; one is due at `at` (crash-loop when `crash`)
    Live(shim, pid, since)   a boot is live: its loader (pid None) or its bhyve
    Stopping(boot, ...)      a live boot is being stopped; `then` says what follows the stop

What is found at construction (a live boot to adopt, an exit recorded while no daemon ran, a
stop a killed daemon left unfinished) is settled there, once: anything that needs a boot becomes
`Due`, and only `poll()` boots, once the daemon has observed the host.

How the daemon drives it:

    sup = GuestSupervisor(name, spec=accepted_spec_or_None, booted=spec_of_its_live_boot,
                          ops=ShimGuestOps(...), prepare_boot=..., clock=time.monotonic,
                          log=..., timings=Timings(...), stop_timeout=config.stop_timeout)
    sup.poll()          # after each observation, on the boot's process events, at its deadline
    sup.desire(spec)    # the guest's accepted spec; None once its file is gone
    sup.start() / sup.stop() / sup.restart()   # operator commands; CommandRefused if not allowed
    sup.shutdown()      # the daemon exits: graceful stop, then nothing more; wait for `settled`
    sup.snapshot()      # its status row
    sup.finished        # a removed guest is stopped and forgotten: drop the supervisor
    sup.next_deadline() # when it next needs a poll without an event

Behaviour an admin relies on (the exit table is `reconciler/policy.py`'s):
- `on_change = "restart"`: an edit that changes what boots (`GuestSpec.boot_key`) stops the guest
  gracefully and boots the new spec; `"next-boot"`: the guest keeps running and its next reboot
  uses the new spec, destroying the VM first (the edit may change its CPUs or memory). An edit
  made while no daemon ran is judged against the spec its live boot was started with.
- A held, powered-off, failed or crash-looping guest boots again when its file changes, or on
  `start`. `start` refuses a guest whose file says `state = "stopped"` (the file wins).
- A boot that cannot be prepared or spawned (a host command failed, a file is missing) is retried
  with the crash backoff whatever `restart` says: it is the host's failure, not the guest's. A
  programming error is not a guest failure: it is not caught here.
- Stop: SIGTERM to bhyve (ACPI power button), after the guest's `stop_timeout` (even once its
  file is gone) `bhyvectl --force-poweroff`, after `kill_grace` SIGKILL to the whole boot (its
  process group), then `bhyvectl --destroy`. A guest still in its loader gets SIGTERM, then
  SIGKILL after `kill_grace`. A stop always ends.
- What a stop leads to is written to the record when it begins (`held` or `stopped`), so a daemon
  killed mid-stop is followed by one that finishes the stop instead of booting a second bhyve.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal, Protocol

from reconciler.errors import ReconcilerError
from reconciler.policy import ExitStatus, RestartHistory, backoff_delay, decide, next_restart
from reconciler.settings import Timings
from reconciler.spec import GuestSpec
from reconciler.status import GuestStatus

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

DEFAULT_TIMINGS = Timings()
LIVE_STATES: frozenset[State] = frozenset({"running", "starting", "stopping"})


class CommandRefused(ReconcilerError):
    """An operator command that the guest's file or state does not allow."""


class BootWaits(ReconcilerError):
    """What `prepare_boot` raises when the boot cannot begin yet (its disk is being copied from
    an image, its image is missing): the guest waits, with no backoff, and tries again at the
    next poll after a pass."""


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

    def spawn(self, boot: BootPlan, spec: GuestSpec) -> int:
        """Write the boot's files, clear the last record, note `spec` as the spec this boot
        runs, start the shim; its pid."""
        ...

    def record(self) -> BootRecord: ...

    def trusted(self, rec: BootRecord) -> BootRecord:
        """`rec` with every pid that is not shown to be this guest's shim, loader or bhyve
        dropped (a stale record's pid may belong to an unrelated process now)."""
        ...

    def watch(self, pid: int) -> None:
        """Have the daemon poll this supervisor once `pid` exits."""
        ...

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
class Off:
    why: OffReason


@dataclass(frozen=True)
class Due:
    at: float
    crash: bool = False  # the crash backoff is running (state crash-loop)
    reboot: bool = False  # the guest rebooted itself: its VM is kept for the loader
    waiting: str | None = None  # why the boot waits for a pass (BootWaits): no timer runs


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
        timings: Timings = DEFAULT_TIMINGS,
        booted: GuestSpec | None = None,
        wall_offset: float = 0.0,
    ) -> None:
        self.name = name
        self._ops = ops
        self._prepare_boot = prepare_boot
        self._clock = clock
        self._log = log
        self.stop_timeout = stop_timeout  # the config's; a spec's own stop_timeout wins
        self.timings = timings  # the daemon's; a SIGHUP may replace them
        self._wall_offset = wall_offset

        self._spec = spec  # kept once its file is gone: its stop_timeout still applies
        self._desired: Desired = _desired_of(spec)
        self.finished = False
        self.file_problem: str | None = None  # set by the daemon while the file is broken

        self._phase: Phase = Off("stopped")
        self._running_since = 0.0  # start of the current boot chain (reboots do not break it)
        self._booted_key: GuestSpec | None = None
        self._boots = 0
        self._history = RestartHistory()
        self._last_exit: ExitStatus | None = None
        self._last_error: str | None = None
        self._row: tuple[tuple[object, ...], GuestStatus] | None = None
        self._look_at = 0.0  # while the loader runs: when to look for bhyve's start again
        self._adopt(clock(), booted)

    # ---- inputs ------------------------------------------------------------------------

    def desire(self, spec: GuestSpec | None) -> None:
        """The guest's accepted spec as it stands, or None once its file is gone."""
        if self._desired == "shutdown":
            return
        now = self._clock()
        if spec is None:
            self._desired = "removed"
            if isinstance(self._phase, Due):
                self._go_idle("stopped")
        else:
            previous, self._spec = self._spec, spec
            self._desired = _desired_of(spec)
            if spec != previous:
                self._on_spec_change(spec, now)
        self._step(now)

    def start(self) -> None:
        """Operator `start`: boot now a guest that is off, held, failed or crash-looping."""
        self._refuse_unless_wanted("start")
        now = self._clock()
        phase = self._phase
        if isinstance(phase, Stopping):
            self._then(phase, "boot")
        elif not isinstance(phase, Live):
            self._history = RestartHistory()
            self._phase = Due(now)
        self._step(now)

    def stop(self) -> None:
        """Operator `stop`: graceful stop, then `held` until `start` or a change to the file."""
        now = self._clock()
        phase = self._phase
        if isinstance(phase, Live):
            self._begin_stop(now, "held")
        elif isinstance(phase, Stopping):
            self._then(phase, "held")
        elif self._desired == "running":
            self._go_idle("held")
        self._step(now)

    def restart(self) -> None:
        """Operator `restart`: graceful stop, then boot; boots at once a guest that is off."""
        self._refuse_unless_wanted("restart")
        now = self._clock()
        phase = self._phase
        if isinstance(phase, Live):
            self._begin_stop(now, "boot")
        elif isinstance(phase, Stopping):
            self._then(phase, "boot")
        else:
            self._history = RestartHistory()
            self._phase = Due(now)
        self._step(now)

    def shutdown(self) -> None:
        """The daemon exits: stop gracefully, boot nothing more, hold nothing."""
        now = self._clock()
        self._desired = "shutdown"
        phase = self._phase
        if isinstance(phase, Live):
            self._begin_stop(now, "stopped")
        elif isinstance(phase, Stopping) and phase.then == "boot":
            self._then(phase, "stopped")
        elif isinstance(phase, Due):
            # The record keeps its crash-loop note: the next daemon resumes the backoff.
            self._phase = Off("stopped")
        self._step(now)

    def poll(self) -> None:
        """Look at the boot and the timers: on the boot's events, at `next_deadline()`, and
        after each observation of the host."""
        self._step(self._clock())

    # ---- outputs -----------------------------------------------------------------------

    @property
    def state(self) -> State:
        return _state_of(self._phase)

    @property
    def settled(self) -> bool:
        """No boot of this guest is live (what a daemon waits for before it exits)."""
        return not isinstance(self._phase, Live | Stopping)

    @property
    def holds_vm(self) -> bool:
        """A boot of ours is live, or the guest rebooted itself and keeps its VM for the next
        boot: planning must neither destroy that VM nor start the guest."""
        phase = self._phase
        return isinstance(phase, Live | Stopping) or (isinstance(phase, Due) and phase.reboot)

    @property
    def between_boots(self) -> bool:
        """It rebooted itself and keeps its VM for the next boot, but no process of it runs:
        its disks may be made ready for that boot."""
        phase = self._phase
        return isinstance(phase, Due) and phase.reboot

    @property
    def steady(self) -> bool:
        """Running with nothing pending: its exit arrives as an event, nothing else is due."""
        phase = self._phase
        return isinstance(phase, Live) and phase.pid is not None

    @property
    def spec(self) -> GuestSpec | None:
        return self._spec

    def next_deadline(self) -> float | None:
        phase = self._phase
        if isinstance(phase, Stopping):
            return phase.deadline
        if isinstance(phase, Due):
            return phase.at if phase.waiting is None else None
        if isinstance(phase, Live) and phase.pid is None:
            return self._look_at
        return None

    def snapshot(self) -> GuestStatus:
        """This guest's status row; the same object while nothing in it changed."""
        key = (
            self._phase, self._desired, self._boots, self._last_exit, self._last_error,
            self._spec, self.file_problem,
        )  # fmt: skip
        if self._row is not None and self._row[0] == key:
            return self._row[1]
        phase = self._phase
        live = phase if isinstance(phase, Live) else None
        exit = self._last_exit
        row = GuestStatus(
            name=self.name,
            state=_state_of(phase),
            desired=self._desired,
            pid=live.pid if live is not None else None,
            started_at=self._wall(live.started_at) if live is not None else None,
            boots=self._boots,
            last_exit=None if exit is None else exit.shell_status,
            last_exit_meaning=None if exit is None else exit.meaning,
            next_restart_at=self._wall(phase.at)
            if isinstance(phase, Due) and phase.waiting is None
            else None,
            last_error=self._last_error,
            file=self._spec.source if self._spec is not None else None,
            spec_error=self.file_problem,
        )
        self._row = (key, row)
        return row

    # ---- what was found at construction --------------------------------------------------

    def _adopt(self, now: float, booted: GuestSpec | None) -> None:
        self._running_since = now
        rec = self._ops.trusted(self._ops.record())
        pids = [p for p in (rec.shim_pid, rec.loader_pid, rec.bhyve_pid) if p is not None]
        live = [p for p in pids if self._ops.alive(p)]
        if rec.exit is None and live:
            self._adopt_live(rec, now, booted, live[0])
        elif rec.outcome in ("held", "stopped"):
            # A stop whose processes ended while no daemon ran: finish its bookkeeping.
            self._last_exit = rec.exit
            self._finish_stop(now, "held" if rec.outcome == "held" else "stopped")
        elif rec.outcome is not None:
            self._restore(rec.outcome, rec.exit, now)
        elif rec.exit is not None or rec.shim_pid is not None:
            # Ended while no daemon ran; without an exit line the shim itself was killed.
            self._ended(rec.exit or ExitStatus(code=None, signal=None), now, rec)

    def _adopt_live(self, rec: BootRecord, now: float, booted: GuestSpec | None, pid: int) -> None:
        bhyve_live = rec.bhyve_pid is not None and self._ops.alive(rec.bhyve_pid)
        started = now - (rec.bhyve_age or 0.0)
        self._phase = Live(rec.shim_pid, rec.bhyve_pid if bhyve_live else None, started)
        self._running_since = started
        self._boots = 1
        ran = booted or self._spec
        self._booted_key = ran.boot_key if ran is not None else None
        self._ops.watch(pid)
        self._log.info(
            "guest.adopted",
            guest=self.name,
            pid=rec.bhyve_pid,
            shim_pid=rec.shim_pid,
            state=self.state,
        )
        if rec.outcome in ("held", "stopped"):
            # A stop a killed daemon began: finish it rather than boot a second bhyve.
            self._begin_stop(now, "held" if rec.outcome == "held" else "stopped")
        elif self._spec is not None:
            self._on_spec_change(self._spec, now)

    def _restore(self, outcome: str, exit: ExitStatus | None, now: float) -> None:
        self._last_exit = exit
        word, _, count = outcome.partition(" ")
        if word == "crash-loop":
            streak = int(count) if count.isdigit() else 1
            self._history = RestartHistory(streak)
            delay = backoff_delay(max(streak - 1, 0), self.timings.backoff)
            self._phase = Due(now + delay, crash=True)
        elif word in ("powered-off", "error"):
            self._phase = Off("powered-off" if word == "powered-off" else "error")
        self._destroy_vm("leftover")

    # ---- the machine -------------------------------------------------------------------

    def _step(self, now: float) -> None:
        if self.finished:
            return
        if isinstance(self._phase, Live) and self._desired != "running":
            self._begin_stop(now, "stopped")  # e.g. adopted, but its file is gone or stopped
        if isinstance(self._phase, Live | Stopping):
            self._watch(now)
        phase = self._phase
        if self.finished or isinstance(phase, Live | Stopping):
            return
        if self._desired == "removed":
            self._retire()
        elif self._desired != "running":
            return
        elif (isinstance(phase, Off) and phase.why == "stopped") or (
            isinstance(phase, Due) and now >= phase.at
        ):
            self._boot(now, reboot=isinstance(phase, Due) and phase.reboot)

    def _on_spec_change(self, spec: GuestSpec, now: float) -> None:
        """The file changed: it overrides a hold, and may restart a running guest."""
        phase = self._phase
        if self._desired == "stopped":
            if isinstance(phase, Stopping):
                self._then(phase, "stopped")
            elif isinstance(phase, Off | Due) and phase != Off("stopped"):
                self._go_idle("stopped")
            return
        if isinstance(phase, Stopping) and phase.then == "held":
            self._then(phase, "boot")
        elif isinstance(phase, Due) or (isinstance(phase, Off) and phase.why != "stopped"):
            self._history = RestartHistory()
            self._phase = Due(now)
        elif isinstance(phase, Live):
            if self._booted_key is None:
                self._booted_key = spec.boot_key
            elif spec.lifecycle.on_change == "restart" and spec.boot_key != self._booted_key:
                self._log.info("guest.spec_changed", guest=self.name, on_change="restart")
                self._begin_stop(now, "boot")

    def _boot(self, now: float, *, reboot: bool = False) -> None:
        spec = self._spec
        assert spec is not None and self._desired == "running"
        key = spec.boot_key
        try:
            if reboot and self._booted_key is not None and key != self._booted_key:
                self._ops.destroy()  # the next-boot spec may change the VM's CPUs or memory
                reboot = False
            elif not reboot and self._ops.vm_exists():
                self._ops.destroy()  # stale: no bhyve of ours runs for it
            plan = self._prepare_boot(spec)
            shim_pid = self._ops.spawn(plan, spec)
        except BootWaits as exc:
            self._wait(now, str(exc), reboot=reboot)
            return
        except (ReconcilerError, OSError) as exc:
            self._last_error = str(exc)
            self._log.error("guest.boot_failed", guest=self.name, error=str(exc))
            self._schedule_restart(now, clean=False, running_since=now)
            return
        self._boots += 1
        self._booted_key = key
        self._phase = Live(shim_pid, None, now)
        self._look_at = now + self.timings.starting_poll
        if not reboot:
            self._running_since = now
        self._ops.watch(shim_pid)
        self._log.info(
            "guest.booting",
            guest=self.name,
            boot=self._boots,
            reboot=reboot,
            loader=plan.loader[0] if plan.loader else "none",
            shim_pid=shim_pid,
        )

    def _wait(self, now: float, why: str, *, reboot: bool) -> None:
        """The boot waits for what a pass prepares; a rebooting guest keeps its VM meanwhile."""
        phase = self._phase
        if isinstance(phase, Due) and phase.waiting == why:
            return
        self._phase = Due(now, reboot=reboot, waiting=why)
        self._last_error = why
        self._log.info("guest.waiting", guest=self.name, reason=why)

    def _watch(self, now: float) -> None:
        """Look at the live boot: has bhyve started, has the boot ended, is a timer due?"""
        phase = self._phase
        if not isinstance(phase, Live | Stopping):
            return
        boot = phase if isinstance(phase, Live) else phase.boot
        steady = isinstance(phase, Live) and boot.pid is not None
        if steady and self._ops.alive(boot.shim_pid or boot.pid or 0):
            return  # the common case costs one liveness check
        rec = self._ops.record()
        exit = rec.exit
        if exit is None:
            pids = [p for p in (boot.shim_pid, rec.loader_pid, rec.bhyve_pid) if p is not None]
            if any(self._ops.alive(p) for p in pids):
                self._note_bhyve(rec, now)
                self._next_look(now)
                if isinstance(self._phase, Stopping):
                    self._advance_stop(rec, now)
                return
            rec = self._ops.record()  # the shim may have written its exit as it ended
            exit = rec.exit or ExitStatus(code=None, signal=None)
        self._ended(exit, now, rec)

    def _next_look(self, now: float) -> None:
        """bhyve's start is learnt from the shim's record: look while the loader runs, more and
        more rarely (a thousand guests booting at once must not spin the daemon)."""
        phase = self._phase
        if isinstance(phase, Live) and phase.pid is None:
            quick = self.timings.starting_poll
            self._look_at = now + min(max(quick, (now - phase.started_at) / 2), max(quick, 1.0))

    def _note_bhyve(self, rec: BootRecord, now: float) -> None:
        phase = self._phase
        boot = phase.boot if isinstance(phase, Stopping) else phase
        assert isinstance(boot, Live)
        if rec.bhyve_pid is None or rec.bhyve_pid == boot.pid or not self._ops.alive(rec.bhyve_pid):
            return
        started = Live(boot.shim_pid, rec.bhyve_pid, now)
        self._phase = replace(phase, boot=started) if isinstance(phase, Stopping) else started
        self._last_error = None
        self._log.info("guest.started", guest=self.name, pid=rec.bhyve_pid, boot=self._boots)

    def _ended(self, exit: ExitStatus, now: float, rec: BootRecord) -> None:
        pid = rec.bhyve_pid if exit.phase == "bhyve" else rec.loader_pid
        self._last_exit = exit
        self._log.info(
            "guest.exited",
            guest=self.name,
            pid=pid,
            status=exit.shell_status,
            signal=exit.signal,
            meaning=exit.meaning,
            phase=exit.phase,
        )
        phase = self._phase
        if isinstance(phase, Stopping):
            self._finish_stop(now, phase.then)
            return
        if self._desired != "running" or self._spec is None:
            self._finish_stop(now, "stopped")
            return
        decision = decide(exit, self._spec.lifecycle.restart)
        if decision.destroy:
            self._destroy_vm("exited")
        if decision.failed:
            self._last_error = _describe(exit)
        if decision.action == "reboot":
            self._phase = Due(now, reboot=True)
        elif decision.action == "stay-off":
            self._go_idle("powered-off")
        elif decision.action == "give-up":
            self._go_idle("error")
        else:
            clean = decision.action == "boot"
            self._schedule_restart(now, clean=clean, running_since=self._running_since)

    def _schedule_restart(self, now: float, *, clean: bool, running_since: float) -> None:
        delay, self._history = next_restart(
            self._history,
            running_since=running_since,
            now=now,
            clean=clean,
            backoff=self.timings.backoff,
        )
        if delay <= 0:
            self._phase = Due(now)
            return
        self._phase = Due(now + delay, crash=True)
        self._ops.set_outcome(f"crash-loop {self._history.streak}")
        self._log.warning(
            "guest.restart_scheduled", guest=self.name, delay=delay, streak=self._history.streak
        )

    # ---- stopping ----------------------------------------------------------------------

    def _stop_timeout(self) -> float:
        if self._spec is not None and self._spec.lifecycle.stop_timeout is not None:
            return self._spec.lifecycle.stop_timeout
        return self.stop_timeout

    def _then(self, phase: Stopping, then: AfterStop) -> None:
        self._phase = replace(phase, then=then)
        self._ops.set_outcome("held" if then == "held" else "stopped")

    def _begin_stop(self, now: float, then: AfterStop) -> None:
        boot = self._phase
        assert isinstance(boot, Live)
        rec = self._ops.record()
        timeout = self._stop_timeout()
        grace = self.timings.kill_grace
        if rec.bhyve_pid is not None and self._ops.alive(rec.bhyve_pid):
            self._phase = Stopping(boot, "acpi", now + timeout, timeout, then)
        else:
            self._phase = Stopping(boot, "loader", now + grace, timeout, then)
        self._ops.set_outcome("held" if then == "held" else "stopped")
        self._log.info(
            "guest.stopping",
            guest=self.name,
            pid=rec.bhyve_pid,
            stop_timeout=timeout,
            phase=self._phase.step,
        )
        self._advance_stop(rec, now)

    def _advance_stop(self, rec: BootRecord, now: float) -> None:
        stop = self._phase
        assert isinstance(stop, Stopping)
        bhyve = self._live(rec.bhyve_pid)
        loader = self._live(rec.loader_pid)
        signalled = set(stop.signalled)
        for pid in (bhyve, loader):
            if pid is not None and pid not in signalled:
                self._ops.signal(pid, signal.SIGTERM)
                signalled.add(pid)
        if bhyve is not None and stop.step == "loader":
            # bhyve started after the stop began: it gets the whole stop_timeout too.
            stop = replace(stop, step="acpi", deadline=now + stop.timeout)
        self._phase = stop = replace(stop, signalled=frozenset(signalled))
        if now < stop.deadline:
            return
        grace = self.timings.kill_grace
        if stop.step == "acpi":
            self._log.warning(
                "guest.forced_poweroff", guest=self.name, pid=bhyve, after=stop.timeout
            )
            try:
                self._ops.force_poweroff()
            except ReconcilerError as exc:
                self._log.warning("guest.force_poweroff_failed", guest=self.name, error=str(exc))
            self._phase = replace(stop, step="poweroff", deadline=now + grace)
        elif stop.step in ("loader", "poweroff"):
            self._log.warning("guest.killed", guest=self.name, pid=bhyve, loader_pid=loader)
            shim = stop.boot.shim_pid
            if shim is not None:
                self._ops.signal_group(shim, signal.SIGKILL)
            for pid in (bhyve, loader, shim):
                if pid is not None:
                    self._ops.signal(pid, signal.SIGKILL)
            self._phase = replace(stop, step="kill", deadline=now + grace)
        else:
            self._last_error = "processes survived SIGKILL"
            self._log.error("guest.stop_abandoned", guest=self.name, pid=bhyve)
            self._finish_stop(now, stop.then)

    def _finish_stop(self, now: float, then: AfterStop) -> None:
        self._destroy_vm("stopped")
        if self._desired == "removed":
            self._retire()
            return
        if then == "boot" and self._desired == "running":
            self._log.info("guest.stopped", guest=self.name, then="boot")
            self._phase = Due(now)
            return
        target: OffReason = "held" if then == "held" and self._desired == "running" else "stopped"
        self._log.info("guest.stopped", guest=self.name, then=target)
        self._go_idle(target)

    def _retire(self) -> None:
        self._destroy_vm("removed")
        self._ops.forget()
        self._phase = Off("stopped")
        self.finished = True
        self._log.info("guest.removed", guest=self.name)

    # ---- small helpers -----------------------------------------------------------------

    def _live(self, pid: int | None) -> int | None:
        return pid if pid is not None and self._ops.alive(pid) else None

    def _go_idle(self, why: OffReason) -> None:
        self._phase = Off(why)
        self._ops.set_outcome(why)

    def _wall(self, t: float) -> float:
        return round(t + self._wall_offset, 3)

    def _destroy_vm(self, why: str) -> None:
        try:
            if self._ops.vm_exists():
                self._ops.destroy()
                self._log.info("guest.destroyed", guest=self.name, reason=why)
        except ReconcilerError as exc:
            self._last_error = str(exc)
            self._log.error("guest.destroy_failed", guest=self.name, error=str(exc))

    def _refuse_unless_wanted(self, command: str) -> None:
        if self._desired in ("removed", "shutdown"):
            why = "its file is gone" if self._desired == "removed" else "the daemon is stopping"
            raise CommandRefused(f"{self.name}: {command}: {why}")
        if self._desired == "stopped":
            raise CommandRefused(
                f'{self.name}: {command}: its file says state = "stopped"; edit the file'
            )


def _desired_of(spec: GuestSpec | None) -> Desired:
    if spec is None:
        return "removed"
    return "running" if spec.lifecycle.state == "running" else "stopped"


def _state_of(phase: Phase) -> State:
    if isinstance(phase, Off):
        return phase.why
    if isinstance(phase, Due):
        if phase.waiting is not None:
            return "waiting"
        return "crash-loop" if phase.crash else "starting"
    if isinstance(phase, Stopping):
        return "stopping"
    return "running" if phase.pid is not None else "starting"


def _describe(exit: ExitStatus) -> str:
    if exit.signal is not None:
        return f"{exit.phase} killed by signal {exit.signal} ({exit.meaning})"
    if exit.code is None:
        return "boot ended without a record (its shim was killed)"
    return f"{exit.phase} exited with status {exit.code} ({exit.meaning})"
