"""A supervised guest's boot cycle: boot, watch, act on the exit, stop, as vmrun.sh's loop.

`BootCycle` is the machine `supervise.GuestSupervisor` is made of: the one place that boots
(`_step`), and what follows a boot's end (the restart policy's decision, the crash backoff) or a
stop (what it was for). Its state is the supervisor's (one `Phase` value and the boot history);
the supervisor adds the inputs (the file, operator commands, shutdown), adoption and the status
row. The OS side goes through `guestboot`; it never calls the OS itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from reconciler.errors import NotReady, ReconcilerError
from reconciler.guestboot import (
    Ended,
    begin_stop,
    carry_out,
    destroy_vm,
    in_context,
    live_pid,
    look,
)
from reconciler.guestops import BootPlan, BootRecord, GuestOps, Logger
from reconciler.guestphase import (
    RESTART_OF,
    AfterStop,
    Desired,
    Due,
    Live,
    Off,
    OffReason,
    Phase,
    StopEnd,
    Stopping,
    describe_exit,
    escalate,
    stop_end,
)
from reconciler.policy import ExitStatus, RestartHistory, decide, next_restart
from reconciler.settings import Timings
from reconciler.spec import GuestSpec

RECENT_EXITS = 5  # boot ends kept for `status NAME`


class BootCycle:
    name: str
    finished: bool
    stop_timeout: float
    timings: Timings
    _ops: GuestOps
    _log: Logger
    _prepare_boot: Callable[[GuestSpec], BootPlan]
    _spec: GuestSpec | None
    _desired: Desired
    _phase: Phase
    _running_since: float
    _booted_key: GuestSpec | None
    _boots: int
    _history: RestartHistory
    _last_exit: ExitStatus | None
    _last_error: str | None
    _look_at: float
    _restarts: dict[str, int]
    _last_stop: StopEnd | None
    _exits: tuple[tuple[float, ExitStatus], ...]

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
        except NotReady as exc:
            # The host is not ready for it yet: no backoff, the next pass looks again.
            if self._last_error != str(exc):
                self._log.info("guest.waiting", guest=self.name, reason=str(exc))
            self._last_error = str(exc)
            self._phase = Due(now, reboot=reboot, waiting=True)
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

    def _watch(self, now: float) -> None:
        """Look at the live boot: has bhyve started, has the boot ended, is a timer due?"""
        phase = self._phase
        if not isinstance(phase, Live | Stopping):
            return
        boot = phase if isinstance(phase, Live) else phase.boot
        seen = look(self._ops, boot, steady=isinstance(phase, Live) and boot.pid is not None)
        if isinstance(seen, Ended):
            self._ended(seen.exit, now, seen.rec, seen_now=True)
        elif seen.rec is not None:
            self._note_bhyve(seen.rec, now)
            self._next_look(now)
            if isinstance(self._phase, Stopping):
                self._advance_stop(seen.rec, now)

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
        if rec.bhyve_pid == boot.pid or live_pid(self._ops, rec.bhyve_pid) is None:
            return
        started = Live(boot.shim_pid, rec.bhyve_pid, now)
        self._phase = replace(phase, boot=started) if isinstance(phase, Stopping) else started
        self._last_error = None
        self._log.info("guest.started", guest=self.name, pid=rec.bhyve_pid, boot=self._boots)

    def _ended(self, exit: ExitStatus, now: float, rec: BootRecord, *, seen_now: bool) -> None:
        """The boot ended with `exit`: as it happened (`seen_now`), or found in its record by a
        daemon that was not running then."""
        phase = self._phase
        stopping = isinstance(phase, Stopping) or rec.outcome in ("held", "stopped")
        exit = in_context(self._ops, exit, stop_requested=stopping, now=seen_now)
        pid = rec.bhyve_pid if exit.phase == "bhyve" else rec.loader_pid
        self._last_exit = exit
        fields = {"reason": exit.reason} if exit.reason is not None else {}
        self._exits = (*self._exits[-(RECENT_EXITS - 1) :], (now, exit))
        self._log.info(
            "guest.exited",
            guest=self.name,
            pid=pid,
            status=exit.shell_status,
            signal=exit.signal,
            meaning=exit.meaning,
            phase=exit.phase,
            **fields,
        )
        if isinstance(phase, Stopping):
            self._finish_stop(now, phase.then)
            return
        if self._desired != "running" or self._spec is None:
            self._finish_stop(now, "stopped")
            return
        decision = decide(exit, self._spec.lifecycle.restart)
        if decision.action in RESTART_OF:
            self._restarts[RESTART_OF[decision.action]] += 1
        if decision.destroy:
            self._destroy_vm("exited")
        if decision.failed:
            self._last_error = describe_exit(exit)
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
        self._phase, rec = begin_stop(
            self._ops,
            self._log,
            self.name,
            boot,
            now=now,
            timeout=self._stop_timeout(),
            grace=self.timings.kill_grace,
            then=then,
        )
        self._advance_stop(rec, now)

    def _advance_stop(self, rec: BootRecord, now: float) -> None:
        stop = self._phase
        assert isinstance(stop, Stopping)
        bhyve = live_pid(self._ops, rec.bhyve_pid)
        loader = live_pid(self._ops, rec.loader_pid)
        grace = self.timings.kill_grace
        self._phase, steps = escalate(stop, bhyve=bhyve, loader=loader, now=now, grace=grace)
        if carry_out(self._ops, self._log, self.name, stop, steps, rec):
            self._last_error = "processes survived SIGKILL"
            self._finish_stop(now, stop.then)

    def _finish_stop(self, now: float, then: AfterStop) -> None:
        self._last_stop = stop_end(self._phase)
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

    def _go_idle(self, why: OffReason) -> None:
        self._phase = Off(why)
        self._ops.set_outcome(why)

    def _destroy_vm(self, why: str) -> None:
        error = destroy_vm(self._ops, self._log, self.name, why)
        if error is not None:
            self._last_error = error


def desired_of(spec: GuestSpec | None) -> Desired:
    if spec is None:
        return "removed"
    return "running" if spec.lifecycle.state == "running" else "stopped"
