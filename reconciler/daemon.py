"""The daemon: wiring of the conf.d watcher, process exits, the control socket, signals, the
supervisors and the convergence pass.

One thread decides everything: it blocks on one queue that the watcher, the kernel's exit
notifications, the control socket and the signal handlers feed, and on the nearest timer. A
pass (`converge.Converger`) runs when conf.d changed, after an exit that may free something,
and every `resync_interval`; between passes only the supervisors that an event or a timer names
are looked at.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from types import FrameType

import structlog

from reconciler.bhyve import BootCommands
from reconciler.config import DaemonConfig
from reconciler.control import ControlServer, DaemonLock, Request
from reconciler.converge import Converger, log_outcome
from reconciler.errors import DaemonError, ReconcilerError, SpecErrors
from reconciler.host.files import check_daemon_dirs, load_ledger, read_config
from reconciler.host.freebsd import FreeBSDHost
from reconciler.host.procwatch import ExitWatcher, exit_watcher
from reconciler.plan import Taps, next_boot, plan_context
from reconciler.settings import Timings
from reconciler.spec import GuestSpec
from reconciler.specchanges import spec_events
from reconciler.specdir import ConfDir, ConfSnapshot
from reconciler.status import DaemonStatus, StatusWriter, file_errors, problem_lines
from reconciler.supervise import CommandRefused, GuestSupervisor
from reconciler.supervisors import Supervisors
from reconciler.watch import ConfWatcher

log = structlog.get_logger("reconciler.daemon")

FULL_SWEEP_EVERY = 10  # passes: with exit events, every guest is looked at this often anyway


@dataclass(frozen=True)
class ConfChanged:
    names: tuple[str, ...] = ()


@dataclass(frozen=True)
class GuestEvent:
    name: str


@dataclass(frozen=True)
class SignalEvent:
    signum: int


@dataclass(frozen=True)
class OperatorRequest:
    request: Request


Wake = ConfChanged | GuestEvent | SignalEvent | OperatorRequest


class Daemon:
    def __init__(
        self,
        config: DaemonConfig,
        host: FreeBSDHost,
        *,
        config_path: Path | None = None,
        timings: Timings | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.host = host
        self.config_path = config_path
        self.timings = timings or config.timings.timings()
        self.clock = clock
        self.wall_clock = wall_clock
        self.wake: queue.SimpleQueue[Wake] = queue.SimpleQueue()
        self.confdir = ConfDir(config.conf_dir, root=host.root)
        self.snapshot: ConfSnapshot | None = None
        self.passes = 0
        self.started_at = wall_clock()
        self._wall_offset = wall_clock() - clock()
        self._converger = Converger(host, config, load_ledger(config.state_dir))
        self._taps: Taps = {}  # the last pass's: boots between passes use them
        self._host_errors: tuple[str, ...] = ()
        self._stopping = False
        self._detach = False
        self._pass_due = True
        self._next_resync = 0.0
        self._status_writer = StatusWriter(config.run_dir)
        self._watcher: ConfWatcher | None = None
        self._exits: ExitWatcher | None = None
        self.supervisors = self._make_supervisors()

    # -- life cycle --------------------------------------------------------------------------

    def run(self) -> int:
        # Handlers first: a SIGTERM during start-up is queued and carried out after adoption.
        previous = {
            signum: signal.signal(signum, self._signal_handler)
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1)
        }
        lock = DaemonLock(self.config.run_dir)
        control = ControlServer(self.config.run_dir, lambda r: self.wake.put(OperatorRequest(r)))
        try:
            check_daemon_dirs(self.config)
            lock.acquire()
            control.start()
            self._watcher = self._start_watcher()
            self._exits = exit_watcher(self._guest_event)
            if self._exits is not None:
                self._exits.start()
            self.supervisors = self._make_supervisors()
            log.info("daemon.started", pid=os.getpid(), conf_dir=str(self.config.conf_dir))
            self.supervisors.adopt(self.confdir.scan().guests)  # the first pass logs problems
            self._loop()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            for part in (self._exits, self._watcher):
                if part is not None:
                    part.stop()
            control.stop()
            lock.release()
        log.info("daemon.exited", detached=self._detach)
        return 0

    def _loop(self) -> None:
        while True:
            if self._detach or (self._stopping and self.supervisors.settled):
                self._write_status()
                return
            now = self.clock()
            if not self._stopping and (self._pass_due or now >= self._next_resync):
                self.reconcile()
                continue
            items: list[Wake] = []
            with contextlib.suppress(queue.Empty):
                items.append(self.wake.get(timeout=max(0.0, self._next_wake(now) - now)))
                while True:
                    items.append(self.wake.get_nowait())
            named = {i.name for i in items if isinstance(i, GuestEvent)}
            for item in items:
                self._handle(item)
            self._pass_due |= self.supervisors.poll(named)
            self._write_status()

    def _next_wake(self, now: float) -> float:
        deadlines = [now + self.timings.max_sleep]
        if not self._stopping:
            deadlines.append(self._next_resync)
        deadlines += self.supervisors.deadlines()
        return min(deadlines)

    def _handle(self, item: Wake) -> None:
        if isinstance(item, ConfChanged):
            self._pass_due = True
        elif isinstance(item, SignalEvent):
            self._on_signal(item.signum)
        elif isinstance(item, OperatorRequest):
            self._operator(item.request)

    # -- signals and operator commands ---------------------------------------------------------

    def _signal_handler(self, signum: int, frame: FrameType | None) -> None:
        self.wake.put(SignalEvent(signum))

    def _guest_event(self, name: str) -> None:
        self.wake.put(GuestEvent(name))

    def _on_signal(self, signum: int) -> None:
        if signum == signal.SIGHUP:
            log.info("daemon.reload", config=str(self.config_path))
            self._reload_config()
            self._pass_due = True
        elif signum == signal.SIGUSR1:
            log.info("daemon.detach", guests=len(self.supervisors))
            self._detach = True
        elif not self._stopping:
            name = signal.Signals(signum).name
            log.info("daemon.stopping", signal=name, guests=len(self.supervisors))
            self._stopping = True
            self.supervisors.shutdown(self._order_of)

    def _order_of(self, sup: GuestSupervisor) -> int:
        if sup.spec is not None:
            return sup.spec.lifecycle.order
        return self._converger.ledger.orders.get(sup.name, 0)

    def _reload_config(self) -> None:
        if self.config_path is None:
            return
        try:
            config = read_config(self.config_path)
        except SpecErrors as exc:
            for p in exc.errors:
                log.error("config.invalid", file=p.file, key=p.key, error=p.message)
            return
        # Where things live cannot change under a running daemon; the rest can.
        self.config = replace(
            config,
            state_dir=self.config.state_dir,
            run_dir=self.config.run_dir,
            conf_dir=self.config.conf_dir,
            vmm_dir=self.config.vmm_dir,
        )
        self._converger.config = self.config
        self.timings = self.config.timings.timings()
        self.supervisors.retime(self.config.stop_timeout, self.timings)

    def _operator(self, request: Request) -> None:
        sup = self.supervisors.get(request.guest or "")
        if request.command not in ("start", "stop", "restart"):
            request.reply(False, f"unknown command {request.command!r}")
        elif sup is None:
            request.reply(False, f"no guest named {request.guest!r}")
        else:
            try:
                getattr(sup, request.command)()
            except CommandRefused as exc:
                request.reply(False, str(exc))
                return
            log.info("operator.command", command=request.command, guest=sup.name, state=sup.state)
            self._write_status()
            request.reply(True, f"{request.command}: {sup.name} is {sup.state}")

    # -- the pass ------------------------------------------------------------------------------

    def reconcile(self) -> None:
        """One pass: specs, host facts, host actions, then every supervisor's accepted spec.
        The loop runs it; a test may run it directly on an in-process daemon."""
        self._pass_due = False
        self._next_resync = self.clock() + self.config.resync_interval
        self.passes += 1
        self.supervisors.new_round()
        self._keep_watching()
        desired = self._scan()
        held = self.supervisors.holding_vms()
        try:
            result = self._converger.converge(desired, held, on_outcome=log_outcome)
        except ReconcilerError as exc:
            log.error("host.observe_failed", error=str(exc))
            self._host_errors = (f"observe: {exc}",)
            return
        self._taps = result.taps
        self._host_errors = result.errors
        for fact, error in result.facts.unobserved.items():
            log.error("host.observe_failed", fact=fact, error=error)
        self.supervisors.hand(desired, result.blocked | frozenset(result.foreign))
        full = self._exits is None or self.passes % FULL_SWEEP_EVERY == 1  # the first, too
        self._pass_due |= self.supervisors.poll(None if full else self.supervisors.unsteady())
        self._write_status()

    def _scan(self) -> Mapping[str, GuestSpec]:
        previous, self.snapshot = self.snapshot, self.confdir.scan()
        snapshot = self.snapshot
        if snapshot is not previous:
            for event, fields in spec_events(previous, snapshot):
                log.info(event, **fields)
            for p in snapshot.errors:
                log.warning("spec.invalid", file=p.file, key=p.key, error=p.message)
            self.supervisors.set_problems(file_errors(snapshot))
        return snapshot.guests

    def _keep_watching(self) -> None:
        """conf_dir removed, renamed or swapped (a symlink to a new checkout): watch anew."""
        if self._watcher is None or self._watcher.is_alive():
            return
        self._watcher.stop()
        try:
            self._watcher = self._start_watcher()
            log.info("watch.restarted", conf_dir=str(self.config.conf_dir))
        except DaemonError as exc:  # the dead watcher stays: the next pass tries again
            log.error("watch.failed", conf_dir=str(self.config.conf_dir), error=str(exc))

    def _start_watcher(self) -> ConfWatcher:
        watcher = ConfWatcher(
            self.config.conf_dir,
            lambda names: self.wake.put(ConfChanged(tuple(sorted(names)))),
            quiet=self.timings.conf_quiet,
            max_wait=self.timings.conf_max_wait,
        )
        watcher.start()
        return watcher

    def _make_supervisors(self) -> Supervisors:
        return Supervisors(
            self.host,
            run_dir=self.config.run_dir,
            vmm_dir=self.host.host_path(self.config.vmm_dir),
            stop_timeout=self.config.stop_timeout,
            timings=self.timings,
            clock=self.clock,
            wall_offset=self._wall_offset,
            prepare_boot=self.prepare_boot,
            exits=self._exits,
            wake=self._guest_event,
        )

    # -- boots -----------------------------------------------------------------------------

    def prepare_boot(self, spec: GuestSpec) -> BootCommands:
        """What the next boot of `spec` runs: its taps (the last pass's), and install mode from
        its first disk."""
        return next_boot(
            spec,
            taps=self._taps.get(spec.name, ()),
            ctx=plan_context(self.config),
            first_disk_bootable=self.host.first_disk_bootable(spec),
        )

    # -- status and checks ---------------------------------------------------------------------

    def _write_status(self) -> None:
        status = DaemonStatus(
            pid=os.getpid(),
            started_at=self.started_at,
            updated_at=self.wall_clock(),
            passes=self.passes,
            guests=self.supervisors.rows(),
            problems=problem_lines(self.snapshot.problems if self.snapshot else ()),
            host_errors=self._host_errors,
        )
        try:
            self._status_writer.write_if_changed(status)
        except OSError as exc:  # a full run_dir: report, keep supervising, try again later
            log.error("status.write_failed", file=str(self._status_writer.path), error=str(exc))
