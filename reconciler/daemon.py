"""The daemon: wiring of the conf.d watcher, process exits, the control socket, signals, the
supervisors and the convergence pass.

One thread decides everything: it blocks on one queue that the watcher, the kernel's exit
notifications, the control socket and the signal handlers feed, and on the nearest timer. A
pass (`converge.Converger`) runs when conf.d changed, after an exit that may free something,
and every `resync_interval`; between passes only the supervisors that an event or a timer names
are looked at.
"""

from __future__ import annotations

import os
import queue
import signal
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

import structlog

from reconciler import wake as w
from reconciler.config import DaemonConfig
from reconciler.confstate import ConfState
from reconciler.control import ControlServer, DaemonLock, Request
from reconciler.converge import Converger, log_outcome
from reconciler.errors import ReconcilerError
from reconciler.fleet import FleetRows
from reconciler.host.files import load_ledger, private_dirs, reread_config
from reconciler.host.freebsd import FreeBSDHost
from reconciler.host.locks import SharedLocks
from reconciler.host.procwatch import ExitWatcher, exit_watcher
from reconciler.keptwatch import KeptWatcher
from reconciler.ledger import Ledger
from reconciler.publish import Publisher
from reconciler.settings import Timings
from reconciler.sharedlock import Waiting
from reconciler.status import DaemonStatus, GuestStatus, problem_lines
from reconciler.supervisors import Supervisors
from reconciler.wake import ConfChanged, GuestEvent, PassWanted, SignalEvent, take

log = structlog.get_logger("reconciler.daemon")

FULL_SWEEP_EVERY = 10  # passes: with exit events, every guest is looked at this often anyway


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
        self.wake: queue.SimpleQueue[w.Wake] = queue.SimpleQueue()
        self.conf = ConfState(config.conf_dir, config.state_dir, root=host.root)
        self.passes = 0
        self.started_at = wall_clock()
        self._wall_offset = wall_clock() - clock()
        self.locks = SharedLocks(
            host_path=host.host_path, clock=clock, wall_clock=wall_clock, take=True
        )
        self._converger = Converger(host, config, load_ledger(config.state_dir), self.locks)
        self._fleet_rows = FleetRows()
        self._others: tuple[GuestStatus, ...] = ()  # placed elsewhere, or waiting for a lock
        self.publisher = Publisher(
            config,
            files=self.conf.files,
            watching=lambda: self._watcher.watching,
            host_name=lambda: self._converger.host_name,
            wall_clock=wall_clock,
        )
        self._host_errors: tuple[str, ...] = ()
        self._stopping = False
        self._detach = False
        self._pass_due = True
        self._next_resync = 0.0
        self._watcher = KeptWatcher(
            config.conf_dir,
            lambda names: self.wake.put(ConfChanged(tuple(sorted(names)))),
            quiet=self.timings.conf_quiet,
            max_wait=self.timings.conf_max_wait,
        )
        self._exits: ExitWatcher | None = None
        self.supervisors = self._make_supervisors()

    @property
    def ledger(self) -> Ledger:
        """What the reconciler created, as of the last pass."""
        return self._converger.ledger

    # -- life cycle --------------------------------------------------------------------------

    def run(self) -> int:
        # Handlers first: a SIGTERM during start-up is queued and carried out after adoption.
        previous = {
            signum: signal.signal(signum, self._signal_handler)
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1)
        }
        lock = DaemonLock(self.config.run_dir)
        control = ControlServer(self.config.run_dir, lambda r: self.wake.put(w.OperatorRequest(r)))
        try:
            private_dirs(self.config)
            lock.acquire()
            self.publisher.start()
            control.start()
            self._watcher.keep()
            self._exits = exit_watcher(self._guest_event)
            if self._exits is not None:
                self._exits.start()
            self._converger.start_copies(lambda why: self.wake.put(PassWanted(why)))
            self.supervisors = self._make_supervisors()
            log.info("daemon.started", pid=os.getpid(), conf_dir=str(self.config.conf_dir))
            self.supervisors.adopt(self.conf.confdir.scan().guests)  # the first pass logs
            self._loop()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            for part in (self._exits, self._watcher):
                if part is not None:
                    part.stop()
            control.stop()
            self.publisher.stop()
            if self.host.copier is not None:  # a cancelled copy leaves no temporary
                self.host.copier.stop()
            lock.release()
        log.info("daemon.exited", detached=self._detach)
        return 0

    def _loop(self) -> None:
        wait = False
        while True:
            # What is queued comes first: a SIGTERM that arrived during start-up stops the
            # guests before any pass could boot one.
            now = self.clock()
            items = take(self.wake, max(0.0, self._next_wake(now) - now) if wait else None)
            self._pass_due |= self._watcher.keep()
            named = {i.name for i in items if isinstance(i, GuestEvent)}
            for item in items:
                self._handle(item)
            if items or wait:
                self._pass_due |= self.supervisors.poll(named)
                self._pass_due |= self._keep_locks()
                self._write_status()
            if self._detach or (self._stopping and self.supervisors.settled):
                if not self._detach:
                    self.locks.release_all()  # every guest stopped: another host may boot them
                self._write_status()
                return
            wait = self._stopping or not (self._pass_due or self.clock() >= self._next_resync)
            if not wait:
                self.reconcile()

    def _keep_locks(self) -> bool:
        """Between passes: shared-storage locks stay fresh while their guests stop (no passes
        then), and a lock awaited from another host is looked at; True when one came free."""
        now = self.clock()
        if self._stopping and now >= self._next_resync:
            self._next_resync = now + self.config.resync_interval
            self.locks.refresh_held()
        check = self.locks.next_check()
        return check is not None and now >= check and self.locks.check_waiting()

    def _next_wake(self, now: float) -> float:
        deadlines = [now + self.timings.max_sleep]
        if not self._stopping or self.locks.held:
            deadlines.append(self._next_resync)
        deadlines += self.supervisors.deadlines()
        check = self.locks.next_check()
        if check is not None and not self._stopping:
            deadlines.append(check)
        return min(deadlines)

    def _handle(self, item: w.Wake) -> None:
        if isinstance(item, ConfChanged | PassWanted):
            self._pass_due = True
        elif isinstance(item, SignalEvent):
            self._on_signal(item.signum)
        elif isinstance(item, w.OperatorRequest):
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
            self.supervisors.shutdown(self._converger.ledger.orders)

    def _reload_config(self) -> None:
        if self.config_path is None:
            return
        config = reread_config(self.config_path, self.config)
        if config is not None:
            self.config = self._converger.config = config
            self.timings = config.timings.timings()
            self.supervisors.retime(config.stop_timeout, self.timings)

    def _operator(self, request: Request) -> None:
        ok, message = self.supervisors.command(request.command, request.guest)
        if ok:
            self._write_status()
        request.reply(ok, message)

    # -- the pass ------------------------------------------------------------------------------

    def reconcile(self) -> None:
        """One pass: specs, host facts, host actions, then every supervisor's accepted spec.
        The loop runs it; a test may run it directly on an in-process daemon."""
        if self.clock() >= self._next_resync:
            self._watcher.settle()  # watched again for a whole resync interval: say no more
        self._pass_due = False
        started = self.clock()
        self._next_resync = started + self.config.resync_interval
        self.passes += 1
        self.supervisors.new_round()
        self._watcher.keep()
        desired, problems = self.conf.scan(
            self._converger.ledger.tap_claims(), lambda name: self.supervisors.get(name) is None
        )
        self.supervisors.set_problems(self.conf.file_errors)
        held = self.supervisors.holding_vms()
        between = self.supervisors.between_boots()
        try:
            result = self._converger.converge(desired, held, log_outcome, between)
        except ReconcilerError as exc:
            log.error("host.observe_failed", error=str(exc))
            self._host_errors = (*problems, f"observe: {exc}")
            self.publisher.pass_done(self.clock() - started, None)
            return
        self._host_errors = (*problems, *result.errors)
        self.supervisors.hand(result.desired, result.blocked | frozenset(result.foreign))
        not_ready = {g: Waiting(None, why) for g, why in result.waits.items()}
        self._others = self._fleet_rows.rows(
            desired,
            result.elsewhere,
            {**not_ready, **result.waiting},
            supervised=lambda name: self.supervisors.get(name) is not None,
            errors=self.conf.file_errors,
        )
        full = self._exits is None or self.passes % FULL_SWEEP_EVERY == 1  # the first, too
        self._pass_due |= self.supervisors.poll(None if full else self.supervisors.unsteady())
        self._write_status()
        self.publisher.pass_done(self.clock() - started, result)

    def _make_supervisors(self) -> Supervisors:
        return Supervisors(
            self.host,
            run_dir=self.config.run_dir,
            vmm_dir=self.host.host_path(self.config.vmm_dir),
            stop_timeout=self.config.stop_timeout,
            timings=self.timings,
            clock=self.clock,
            wall_offset=self._wall_offset,
            prepare_boot=self._converger.prepare_boot,
            exits=self._exits,
            wake=self._guest_event,
        )

    # -- status and checks ---------------------------------------------------------------------

    def _write_status(self) -> None:
        status = DaemonStatus(
            pid=os.getpid(),
            started_at=self.started_at,
            updated_at=self.wall_clock(),
            passes=self.passes,
            guests=self.supervisors.rows() + self._others,
            problems=problem_lines(self.conf.snapshot.problems if self.conf.snapshot else ()),
            host_errors=self._host_errors + self._watcher.notes,
        )
        self.publisher.publish(status)
