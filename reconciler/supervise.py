"""One supervisor per guest: boots it, watches the boot, applies the restart policy, stops it.

A state machine driven by the daemon: it never sleeps, never starts a thread and never calls the
OS itself. Every process and VM operation goes through a `GuestOps` object (the real one is
`reconciler/host/guests.py`), time comes from an injected clock, timings from `Timings`, and
timers are deadlines that `poll()` checks, so many guests stop in parallel and tests run on a
fake clock.

Its state is one `guestphase.Phase` value (Off, Due, Live, Stopping). What is found at
construction (a live boot to adopt, an exit recorded while no daemon ran, a stop a killed daemon
left unfinished) is settled there, once: anything that needs a boot becomes `Due`, and only
`poll()` boots, once the daemon has observed the host. The OS side of a boot (looking at it,
stopping it, destroying its VM) is `guestboot.py`'s.

How the daemon drives it:

    sup = GuestSupervisor(name, spec=accepted_spec_or_None,
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

from collections.abc import Callable

from reconciler.bootcycle import BootCycle, desired_of
from reconciler.guestboot import find, live_pid
from reconciler.guestops import BootPlan, BootRecord, CommandRefused, GuestOps, Logger
from reconciler.guestphase import (
    RESTART_REASONS,
    Desired,
    Due,
    Live,
    Off,
    Phase,
    State,
    StopEnd,
    Stopping,
    state_of,
    status_row,
)
from reconciler.policy import ExitStatus, RestartHistory, backoff_delay
from reconciler.settings import Timings
from reconciler.spec import GuestSpec
from reconciler.status import GuestStatus

__all__ = ["BootPlan", "BootRecord", "CommandRefused", "GuestOps", "GuestSupervisor", "Logger"]

DEFAULT_TIMINGS = Timings()
LIVE_STATES: frozenset[State] = frozenset({"running", "starting", "stopping"})


class GuestSupervisor(BootCycle):
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
        self._desired: Desired = desired_of(spec)
        self.finished = False
        self.file_problem: str | None = None  # set by the daemon while the file is broken

        self._phase: Phase = Off("stopped")
        self._running_since = 0.0  # start of the current boot chain (reboots do not break it)
        self._booted_key: GuestSpec | None = None
        self._boots = 0
        self._history = RestartHistory()
        self._last_exit: ExitStatus | None = None
        self._last_error: str | None = None
        self._restarts = dict.fromkeys(RESTART_REASONS, 0)
        self._last_stop: StopEnd | None = None  # how the last stop ended
        self._exits: tuple[tuple[float, ExitStatus], ...] = ()  # recent boot ends, oldest first
        self._row: tuple[tuple[object, ...], GuestStatus] | None = None
        self._look_at = 0.0  # while the loader runs: when to look for bhyve's start again
        self._adopt(clock())

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
            self._desired = desired_of(spec)
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
        self._restarts["operator"] += 1
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
        return state_of(self._phase)

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
        a pass may make its disks and seed ready for that boot."""
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
            return None if phase.waiting else phase.at
        if isinstance(phase, Live) and phase.pid is None:
            return self._look_at
        return None

    def snapshot(self) -> GuestStatus:
        """This guest's status row; the same object while nothing in it changed."""
        key = (
            self._phase, self._desired, self._boots, self._last_exit, self._last_error,
            self._spec, self.file_problem, self._booted_key, self._last_stop, self._exits,
            self._history, *self._restarts.values(),
        )  # fmt: skip
        if self._row is None or self._row[0] != key:
            live = isinstance(self._phase, Live | Stopping) and self._booted_key is not None
            row = status_row(
                self.name,
                self._phase,
                desired=self._desired,
                boots=self._boots,
                last_exit=self._last_exit,
                last_error=self._last_error,
                file=self._spec.source if self._spec is not None else None,
                spec_error=self.file_problem,
                wall_offset=self._wall_offset,
                spec=self._spec,
                restarts=self._restarts,
                shown=self._booted_key if live else self._spec,
                last_stop=self._last_stop,
                streak=self._history.streak,
                exits=self._exits,
            )
            self._row = (key, row)
        return self._row[1]

    # ---- what was found at construction --------------------------------------------------

    def _adopt(self, now: float) -> None:
        self._running_since = now
        found = find(self._ops)
        rec = found.rec
        if rec.exit is None and found.live:
            self._adopt_live(rec, now, found.live[0])
        elif rec.outcome in ("held", "stopped"):
            # A stop whose processes ended while no daemon ran: finish its bookkeeping.
            self._last_exit = rec.exit
            self._finish_stop(now, "held" if rec.outcome == "held" else "stopped")
        elif rec.outcome is not None:
            self._restore(rec.outcome, rec.exit, now)
        elif rec.exit is not None or rec.shim_pid is not None:
            # Ended while no daemon ran; without an exit line the shim itself was killed.
            self._ended(rec.exit or ExitStatus(code=None, signal=None), now, rec, seen_now=False)

    def _adopt_live(self, rec: BootRecord, now: float, pid: int) -> None:
        started = now - (rec.bhyve_age or 0.0)
        self._phase = Live(rec.shim_pid, live_pid(self._ops, rec.bhyve_pid), started)
        self._running_since = started
        self._boots = 1
        # An edit made while no daemon ran is judged against what this boot was started with.
        ran = self._ops.booted() or self._spec
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

    def _refuse_unless_wanted(self, command: str) -> None:
        if self._desired in ("removed", "shutdown"):
            why = "its file is gone" if self._desired == "removed" else "the daemon is stopping"
            raise CommandRefused(f"{self.name}: {command}: {why}")
        if self._desired == "stopped":
            raise CommandRefused(
                f'{self.name}: {command}: its file says state = "stopped"; edit the file'
            )
