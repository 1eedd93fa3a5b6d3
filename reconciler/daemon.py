"""The daemon: wiring of watch, periodic resync, reconcile passes, supervisors, signals, status.

One thread decides everything: it blocks on one queue that the conf.d watcher, the run_dir
watcher (boot records), the control socket and the signal handlers feed, and on the nearest
timer. Each pass re-reads only changed specs, observes the host with a fixed set of commands,
applies the plan's host actions, and hands every guest's last good spec to its supervisor.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import stat
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from types import FrameType
from typing import Any

import structlog

from reconciler.actions import Action
from reconciler.bhyve import BootCommands
from reconciler.config import DaemonConfig, parse_config
from reconciler.control import ControlServer, DaemonLock, Request
from reconciler.errors import DaemonError, ReconcilerError
from reconciler.facts import HostFacts
from reconciler.host.freebsd import ApplyReport, FreeBSDHost, Outcome, execute_actions
from reconciler.host.guests import ShimGuestOps, recorded_guests
from reconciler.ledger import Ledger, load_ledger, save_ledger
from reconciler.plan import (
    PlanContext,
    guests_holding_taps,
    next_boot,
    plan_actions,
    plan_context,
    state_files,
)
from reconciler.spec import GuestSpec
from reconciler.specdir import ConfDir, ConfSnapshot
from reconciler.status import DaemonStatus, GuestStatus, StatusWriter
from reconciler.supervise import CommandRefused, GuestSnapshot, GuestSupervisor
from reconciler.watch import ConfWatcher

log = structlog.get_logger("reconciler.daemon")

FULL_SWEEP_EVERY = 10  # passes: with the record watcher up, every guest is polled this often
MAX_SLEEP = 5.0  # seconds: the loop wakes at least this often (timers, the watchers' health)
LIVE = frozenset({"running", "starting", "stopping"})


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


@dataclass(frozen=True)
class _ConfStatus:
    file_of: dict[str, str]  # guest -> its file
    errors: dict[str, str]  # guest -> the first error of its (broken) file
    problems: tuple[str, ...]


Wake = ConfChanged | GuestEvent | SignalEvent | OperatorRequest


def is_boot_record(name: str) -> bool:
    """The boot records worth waking for: bhyve started (its pid) or the boot ended (exit)."""
    return name.endswith(("/exit", "/bhyve.pid", "/loader.pid"))


class Daemon:
    def __init__(
        self,
        config: DaemonConfig,
        host: FreeBSDHost,
        *,
        config_path: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.host = host
        self.config_path = config_path
        self.clock = clock
        self.wall_clock = wall_clock
        self.wake: queue.SimpleQueue[Wake] = queue.SimpleQueue()
        self.confdir = ConfDir(config.conf_dir, root=host.root)
        self.snapshot: ConfSnapshot | None = None
        self.ledger: Ledger = load_ledger(config.state_dir)
        self.facts = HostFacts()
        self.supervisors: dict[str, GuestSupervisor] = {}
        self.host_errors: tuple[str, ...] = ()
        self.blocked: set[str] = set()
        self.passes = 0
        self.started_at = wall_clock()
        self._wall_offset = wall_clock() - clock()
        self._rows: dict[str, tuple[GuestSnapshot, tuple[str | None, str | None], GuestStatus]] = {}
        self._conf_cache: tuple[ConfSnapshot | None, _ConfStatus] | None = None
        self._stopping = False
        self._detach = False
        self._status_dirty = True
        self._next_resync = 0.0
        self._pass_due = True
        self._last_status: DaemonStatus | None = None
        self._passes_dirty = False
        self._status_writer = StatusWriter(config.run_dir)
        self._watcher: ConfWatcher | None = None
        self._records: ConfWatcher | None = None
        self._plan_base = plan_context(config)
        self._given: dict[str, GuestSpec | None] = {}  # the spec each supervisor last got
        self._adopted: set[str] = set()  # supervisors not polled yet since adoption
        self._last_plan: tuple[tuple[object, ...], list[Action]] | None = None

    # -- life cycle --------------------------------------------------------------------------

    def run(self) -> int:
        self._check_dirs()
        lock = DaemonLock(self.config.run_dir)
        lock.acquire()
        control = ControlServer(self.config.run_dir, lambda r: self.wake.put(OperatorRequest(r)))
        guests_dir = self.config.run_dir / "guests"
        guests_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        records = self._records = ConfWatcher(
            guests_dir, self._on_records, accept=is_boot_record, recursive=True, quiet=0.01
        )
        previous = self._install_signals()
        try:
            control.start()
            self._watcher = self._start_watcher()
            records.start()
            log.info("daemon.started", pid=os.getpid(), conf_dir=str(self.config.conf_dir))
            self._adopt()
            self._loop()
        finally:
            self._restore_signals(previous)
            records.stop()
            if self._watcher is not None:
                self._watcher.stop()
            control.stop()
            lock.release()
        log.info("daemon.exited", detached=self._detach)
        return 0

    def _start_watcher(self) -> ConfWatcher:
        # A file counts once its writer closed or renamed it, so the quiet period only has to
        # gather a burst (a git pull, a config-management run): 20 ms, and never over 500 ms.
        watcher = ConfWatcher(self.config.conf_dir, self._on_conf, quiet=0.02, max_wait=0.5)
        watcher.start()
        return watcher

    def _on_conf(self, names: frozenset[str]) -> None:
        self.wake.put(ConfChanged(tuple(sorted(names))))

    def _on_records(self, names: frozenset[str]) -> None:
        for guest in {n.split("/", 1)[0] for n in names}:
            self.wake.put(GuestEvent(guest))

    def _loop(self) -> None:
        while True:
            now = self.clock()
            if (
                self._stopping
                and not self._detach
                and all(s.settled for s in self.supervisors.values())
            ):
                self._write_status(force=True)
                return
            if self._detach:
                self._write_status(force=True)
                return
            if not self._stopping and (self._pass_due or now >= self._next_resync):
                self.reconcile()
                continue
            timeout = self._next_wake(now) - now
            try:
                item: Wake | None = self.wake.get(timeout=max(0.0, timeout))
            except queue.Empty:
                item = None
            items = [item] if item is not None else []
            with contextlib.suppress(queue.Empty):
                while True:
                    items.append(self.wake.get_nowait())
            polled: set[str] = set()
            for it in items:
                self._handle(it, polled)
            self._poll(polled)
            self._write_status()

    def _next_wake(self, now: float) -> float:
        deadlines = [now + MAX_SLEEP]
        if not self._stopping:
            deadlines.append(self._next_resync)
        deadlines.extend(
            d for s in self.supervisors.values() if (d := s.next_deadline()) is not None
        )
        return min(deadlines)

    def _handle(self, item: Wake, polled: set[str]) -> None:
        if isinstance(item, ConfChanged):
            self._pass_due = True
        elif isinstance(item, GuestEvent):
            polled.add(item.name)
        elif isinstance(item, SignalEvent):
            self._on_signal(item.signum)
        elif isinstance(item, OperatorRequest):
            self._operator(item.request)

    def _poll(self, names: set[str] | None) -> None:
        """Poll supervisors: those named by boot-record events, plus any whose timer is due;
        all of them when `names` is None (each pass)."""
        now = self.clock()
        for name, sup in list(self.supervisors.items()):
            deadline = sup.next_deadline()
            if names is None or name in names or (deadline is not None and deadline <= now):
                before = sup.state
                sup.poll()
                if sup.state != before:
                    self._status_dirty = True
                    if sup.state not in LIVE:
                        self._pass_due = True  # teardown may wait on this stop
            if sup.finished:
                del self.supervisors[name]
                self._status_dirty = True
                self._pass_due = True

    def _sweep(self) -> None:
        """Once per pass, the safety net for a missed boot-record event. While the record
        watcher runs, a steadily running guest is left to it (its exit lands as an event)
        except on every FULL_SWEEP_EVERY-th pass; starting and stopping guests, whose record
        directory may be newer than the watch on it, are polled every pass. Without the
        watcher every guest is polled every pass."""
        watched = self._records is not None and self._records.is_alive()
        if not watched or self.passes % FULL_SWEEP_EVERY == 0:
            self._poll(None)
            return
        self._poll({n for n, s in self.supervisors.items() if s.state in LIVE - {"running"}})

    # -- signals -----------------------------------------------------------------------------

    def _install_signals(self) -> dict[int, Any]:
        previous: dict[int, Any] = {}
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1):
            previous[signum] = signal.signal(signum, self._signal_handler)
        return previous

    def _restore_signals(self, previous: dict[int, Any]) -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    def _signal_handler(self, signum: int, frame: FrameType | None) -> None:
        self.wake.put(SignalEvent(signum))

    def _on_signal(self, signum: int) -> None:
        if signum == signal.SIGHUP:
            log.info("daemon.reload", config=str(self.config_path))
            self._reload_config()
            self._pass_due = True
        elif signum == signal.SIGUSR1:
            log.info("daemon.detach", guests=len(self.supervisors))
            self._detach = True
        elif not self._stopping:
            log.info(
                "daemon.stopping", signal=signal.Signals(signum).name, guests=len(self.supervisors)
            )
            self._stopping = True
            for sup in sorted(self.supervisors.values(), key=self._order_key, reverse=True):
                sup.shutdown()
            self._status_dirty = True

    def _order_key(self, sup: GuestSupervisor) -> tuple[int, str]:
        spec = self.snapshot.guests.get(sup.name) if self.snapshot else None
        order = spec.lifecycle.order if spec else self.ledger.orders.get(sup.name, 0)
        return (order, sup.name)

    def _reload_config(self) -> None:
        if self.config_path is None:
            return
        try:
            config, problems = parse_config(
                self.config_path.read_text(), file=str(self.config_path)
            )
        except OSError as exc:
            log.error("config.unreadable", file=str(self.config_path), error=exc.strerror)
            return
        errors = [p for p in problems if not p.warning]
        if errors:
            for p in errors:
                log.error("config.invalid", file=p.file, key=p.key, error=p.message)
            return
        kept = replace(
            config,
            state_dir=self.config.state_dir,
            run_dir=self.config.run_dir,
            conf_dir=self.config.conf_dir,
            vmm_dir=self.config.vmm_dir,
        )
        self.config = kept
        for sup in self.supervisors.values():
            sup.stop_timeout = kept.stop_timeout  # built with the old config's

    # -- operator commands ----------------------------------------------------------------

    def _operator(self, request: Request) -> None:
        sup = self.supervisors.get(request.guest or "")
        if request.command not in ("start", "stop", "restart"):
            request.reply(False, f"unknown command {request.command!r}")
            return
        if sup is None:
            request.reply(False, f"no guest named {request.guest!r}")
            return
        try:
            getattr(sup, request.command)()
        except CommandRefused as exc:
            request.reply(False, str(exc))
            return
        log.info("operator.command", command=request.command, guest=sup.name, state=sup.state)
        self._status_dirty = True
        self._write_status()
        request.reply(True, f"{request.command}: {sup.name} is {sup.state}")

    # -- reconcile ---------------------------------------------------------------------------

    def reconcile(self) -> ApplyReport | None:
        """One pass: specs, host facts, host actions, then every supervisor's desired spec."""
        self._pass_due = False
        self._next_resync = self.clock() + self.config.resync_interval
        self.passes += 1
        self._passes_dirty = True  # status.json counts passes
        if self._watcher is not None and not self._watcher.is_alive():
            # conf_dir was removed, renamed or swapped (a symlink to a new checkout): watch anew.
            self._watcher.stop()
            try:
                self._watcher = self._start_watcher()
                log.info("watch.restarted", conf_dir=str(self.config.conf_dir))
            except DaemonError as exc:  # the dead watcher stays: the next pass tries again
                log.error("watch.failed", conf_dir=str(self.config.conf_dir), error=str(exc))
        previous = self.snapshot
        self.snapshot = snapshot = self.confdir.scan()
        desired = snapshot.guests
        if snapshot is not previous:
            self._status_dirty = True
            for p in snapshot.problems:
                if not p.warning:
                    log.warning("spec.invalid", file=p.file, key=p.key, error=p.message)
        try:
            files = state_files(desired, self._plan_base)
            live = frozenset(n for n, s in self.supervisors.items() if s.state in LIVE)
            self.facts = self.host.observe(desired, self.ledger, state_files=files, running=live)
        except ReconcilerError as exc:
            log.error("host.observe_failed", error=str(exc))
            self.host_errors = (f"observe: {exc}",)
            self._status_dirty = True
            self._write_status()
            return None
        # An adopted guest acts first on an exit recorded while no daemon ran (a reboot boots
        # again at once); planned before that, its VM would look stale and be destroyed.
        for name in sorted(self._adopted):
            if (adopted := self.supervisors.get(name)) is not None:
                adopted.poll()
        self._adopted.clear()
        supervised = frozenset(n for n, s in self.supervisors.items() if s.state in LIVE)
        foreign = self._foreign(desired, supervised)
        running = supervised | foreign.keys()
        ctx = replace(self._plan_base, uplinks=self.config.bridges, running=running)
        actions = self._plan(desired, ctx)
        report = execute_actions(actions, self.host.apply, self.ledger, on_outcome=self._logged)
        self._settle_ledger(report, desired)
        host_errors = tuple(
            f"{o.action.describe()}: {o.error}" for o in report.outcomes if o.error is not None
        ) + tuple(
            f"guest {name} runs outside bhyve-reconciler (its tap is held by pid {pid}): "
            "not adopted; stop it there and the reconciler takes over"
            for name, pid in sorted(foreign.items())
        )
        if report.outcomes or host_errors != self.host_errors:
            self._status_dirty = True
        self.host_errors = host_errors
        self.blocked = {
            o.action.guest
            for o in report.outcomes
            if o.status in ("failed", "skipped") and o.action.guest
        }
        given = self._given
        news = [g for name, g in desired.items() if given.get(name) is not g]
        for spec in sorted(news, key=lambda g: (g.lifecycle.order, g.name)):  # boots go by order
            sup = self.supervisors.get(spec.name)
            if sup is None:
                if spec.name in self.blocked or spec.name in foreign:
                    continue  # its taps or disks are not there yet, or another bhyve runs it
                sup = self.supervisors[spec.name] = self._supervisor(spec.name, spec)
                self._given[spec.name] = spec
                sup.poll()
                self._status_dirty = True
            elif self._given.get(spec.name) is not spec:
                self._given[spec.name] = spec
                sup.desire(spec)
                self._status_dirty = True
        for name, sup in list(self.supervisors.items()):
            if name not in desired and name in self._given:
                del self._given[name]
                sup.desire(None)
                self._status_dirty = True
        self._sweep()
        self._write_status()
        return report

    def _foreign(
        self, desired: Mapping[str, GuestSpec], supervised: frozenset[str]
    ) -> dict[str, int]:
        """Desired guests run by a bhyve that is not ours (vmrun.sh, another manager): never
        booted a second time, and their VM never destroyed as stale (DESIGN.md rule 4)."""
        unsupervised = [vm for vm in self.facts.vms if vm in desired and vm not in supervised]
        if not unsupervised:
            return {}
        return guests_holding_taps(desired, self.facts, self.ledger, unsupervised)

    def _plan(self, desired: Mapping[str, GuestSpec], ctx: PlanContext) -> list[Action]:
        """plan_actions is pure: with the same specs, facts, ledger and context, the same plan
        (a no-op pass at 1,000 guests skips the work of planning them again)."""
        key = (desired, self.facts, self.ledger, ctx)
        last = self._last_plan
        if last is not None and all(a is b or a == b for a, b in zip(last[0], key, strict=True)):
            return last[1]
        actions = plan_actions(desired, self.facts, self.ledger, ctx)
        self._last_plan = (key, actions)
        return actions

    def _settle_ledger(self, report: ApplyReport, desired: Mapping[str, GuestSpec]) -> None:
        orders = {name: g.lifecycle.order for name, g in desired.items()}
        ledger = report.ledger.with_orders(orders)
        if ledger != self.ledger:
            save_ledger(self.config.state_dir, ledger)
            self.ledger = ledger

    def _logged(self, outcome: Outcome) -> None:
        action = outcome.action
        if outcome.status == "done":
            log.info("host.changed", action=action.summary, guest=action.guest)
        elif outcome.status == "failed":
            err = outcome.error
            assert err is not None
            log.error(
                "host.action_failed",
                action=action.summary,
                argv=list(err.argv),
                status=err.status,
                stderr=err.stderr.strip(),
            )
        elif outcome.status == "skipped":
            log.warning(
                "host.action_skipped", action=action.summary, waiting_for=list(outcome.waiting_for)
            )

    # -- supervisors ---------------------------------------------------------------------

    def _adopt(self) -> None:
        """Before the first pass: a supervisor for every guest with a boot record, so a running
        guest is adopted (never booted twice) even when its file is gone."""
        guests = self.confdir.scan().guests  # the first pass logs its problems
        for name in recorded_guests(self.config.run_dir):
            spec = guests.get(name)
            self.supervisors[name] = self._supervisor(name, spec)
            self._given[name] = spec
            self._adopted.add(name)
            log.info("guest.found_record", guest=name, state=self.supervisors[name].state)
        self._pass_due = True

    def _supervisor(self, name: str, spec: GuestSpec | None) -> GuestSupervisor:
        ops = ShimGuestOps(
            name,
            runner=self.host.runner,
            run_dir=self.config.run_dir,
            vmm_dir=self.host.host_path(self.config.vmm_dir),
        )
        return GuestSupervisor(
            name,
            spec=spec,
            ops=ops,
            prepare_boot=self.prepare_boot,
            clock=self.clock,
            log=structlog.get_logger("reconciler.guest"),
            stop_timeout=self.config.stop_timeout,
        )

    def prepare_boot(self, spec: GuestSpec) -> BootCommands:
        """What the next boot of `spec` runs: its taps, and install mode from its first disk."""
        return next_boot(
            spec,
            desired=self.snapshot.guests if self.snapshot else {},
            interfaces=self.facts.interfaces,
            ledger=self.ledger,
            ctx=self._plan_base,
            first_disk_bootable=self.host.first_disk_bootable(spec),
        )

    # -- status ------------------------------------------------------------------------------

    def status(self) -> DaemonStatus:
        """The status rows; rebuilt per guest only when its supervisor's snapshot changed."""
        conf = self._conf_status()
        rows = []
        for name, sup in sorted(self.supervisors.items()):
            snap = sup.snapshot()
            extra = (conf.file_of.get(name), conf.errors.get(name))
            cached = self._rows.get(name)
            if cached is not None and cached[0] == snap and cached[1] == extra:
                rows.append(cached[2])
                continue
            row = GuestStatus(
                name=name,
                state=snap.state,
                pid=snap.pid,
                started_at=self._wall(snap.started_at),
                boots=snap.boots,
                last_exit=snap.last_exit_status,
                last_exit_meaning=snap.last_exit_meaning,
                next_restart_at=self._wall(snap.next_restart_at),
                last_error=snap.last_error,
                file=extra[0],
                spec_error=extra[1],
            )
            self._rows[name] = (snap, extra, row)
            rows.append(row)
        for gone in self._rows.keys() - self.supervisors.keys():
            del self._rows[gone]
        return DaemonStatus(
            pid=os.getpid(),
            started_at=self.started_at,
            updated_at=self.wall_clock(),
            passes=self.passes,
            guests=tuple(rows),
            problems=conf.problems,
            host_errors=self.host_errors,
        )

    def _wall(self, t: float | None) -> float | None:
        """A reading of the monotonic clock as wall-clock time, stable across calls."""
        return None if t is None else round(t + self._wall_offset, 3)

    def _conf_status(self) -> _ConfStatus:
        snapshot = self.snapshot
        if self._conf_cache is not None and self._conf_cache[0] is snapshot:
            return self._conf_cache[1]
        files = snapshot.files if snapshot else {}
        problems = snapshot.problems if snapshot else ()
        errors: dict[str, str] = {}
        for p in problems:
            owner = files.get(p.file)
            if not p.warning and owner is not None and owner.guest:
                errors.setdefault(owner.guest, f"{p.file}: {p.key}: {p.message}")
        result = _ConfStatus(
            file_of={st.guest: f for f, st in files.items() if st.guest},
            errors=errors,
            problems=tuple(
                f"{p.file}: {p.key}: {'warning: ' if p.warning else ''}{p.message}"
                for p in problems
            ),
        )
        self._conf_cache = (snapshot, result)
        return result

    def _write_status(self, force: bool = False) -> None:
        if self._status_dirty or force or self._last_status is None:
            status = self.status()
        elif self._passes_dirty:
            # Only the pass count moved: the rows stand, so do not walk every supervisor.
            status = replace(self._last_status, passes=self.passes, updated_at=self.wall_clock())
        else:
            return
        last = self._last_status
        if force or last is None or replace(status, updated_at=last.updated_at) != last:
            self._status_writer.write(status)
            self._last_status = status
        self._status_dirty = self._passes_dirty = False

    # -- checks ----------------------------------------------------------------------------

    def _check_dirs(self) -> None:
        for d in (self.config.run_dir, self.config.state_dir):
            d.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(d, 0o700)
        try:
            st = os.stat(self.config.conf_dir)
        except FileNotFoundError:
            raise DaemonError(f"conf_dir {self.config.conf_dir} does not exist") from None
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise DaemonError(
                f"conf_dir {self.config.conf_dir} is writable by group or others "
                f"(mode {stat.S_IMODE(st.st_mode):04o}): anyone who can write there can run "
                "guests as root; chmod go-w it"
            )
        if os.geteuid() == 0 and st.st_uid != 0:
            raise DaemonError(f"conf_dir {self.config.conf_dir} is not owned by root")
