"""The daemon's supervisors: one `GuestSupervisor` per guest, made, fed, polled and dropped.

Edge wiring the daemon's loop uses: it builds each supervisor over the real `ShimGuestOps`
(one process listing per pass shared by every adoption, process exits through the kernel's
watcher), hands each guest its accepted spec in boot order, polls the ones an event or a timer
names, and collects their status rows. It decides nothing about a guest: the supervisor does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import structlog

from reconciler.bhyve import BootCommands
from reconciler.host.bootlog import BOOT_LOG, BootLogKeeper
from reconciler.host.freebsd import FreeBSDHost
from reconciler.host.guests import ShimGuestOps, guest_run_dir, list_processes, recorded_guests
from reconciler.host.procwatch import ExitWatcher
from reconciler.processes import ProcessTable
from reconciler.settings import Timings
from reconciler.spec import GuestSpec
from reconciler.status import GuestStatus
from reconciler.supervise import CommandRefused, GuestSupervisor

log = structlog.get_logger("reconciler.daemon")


class Supervisors:
    def __init__(
        self,
        host: FreeBSDHost,
        *,
        run_dir: Path,
        vmm_dir: Path,
        stop_timeout: float,
        timings: Timings,
        clock: Callable[[], float],
        wall_offset: float,
        prepare_boot: Callable[[GuestSpec], BootCommands],
        exits: ExitWatcher | None,
        wake: Callable[[str], None],
    ) -> None:
        self._host = host
        self._run_dir = run_dir
        self._vmm_dir = vmm_dir
        self.stop_timeout = stop_timeout
        self._timings = timings
        self._clock = clock
        self._wall_offset = wall_offset
        self._prepare_boot = prepare_boot
        self._exits = exits
        self._wake = wake
        self._by_name: dict[str, GuestSupervisor] = {}
        self._given: dict[str, GuestSpec | None] = {}  # the spec each supervisor last got
        self._log_paths: dict[str, Path] = {}  # run_dir/guests/NAME/boot.log by guest
        self._processes: ProcessTable | None = None
        self._boot_logs = BootLogKeeper(
            every=timings.boot_log_check,
            on_error=lambda path, exc: log.error(
                "guest.boot_log_failed", file=str(path), error=str(exc)
            ),
        )

    def __iter__(self) -> Iterator[GuestSupervisor]:
        return iter(list(self._by_name.values()))

    def __len__(self) -> int:
        return len(self._by_name)

    def __getitem__(self, name: str) -> GuestSupervisor:
        return self._by_name[name]

    def get(self, name: str) -> GuestSupervisor | None:
        return self._by_name.get(name)

    @property
    def settled(self) -> bool:
        return all(s.settled for s in self._by_name.values())

    def holding_vms(self) -> frozenset[str]:
        return frozenset(n for n, s in self._by_name.items() if s.holds_vm)

    def between_boots(self) -> frozenset[str]:
        return frozenset(n for n, s in self._by_name.items() if s.between_boots)

    def rows(self) -> tuple[GuestStatus, ...]:
        return tuple(self._by_name[n].snapshot() for n in sorted(self._by_name))

    def deadlines(self) -> Iterator[float]:
        yield from (d for s in self._by_name.values() if (d := s.next_deadline()) is not None)
        if not self.settled:
            yield self._boot_logs.due  # a live guest's boot log is looked at on time

    def new_round(self) -> None:
        """A new pass: the next adoption takes a fresh process listing."""
        self._processes = None

    def adopt(self, accepted: Mapping[str, GuestSpec]) -> None:
        """Before the first pass: a supervisor for every guest with a boot record, so a running
        guest is adopted (never booted twice) even when its file is gone."""
        for name in recorded_guests(self._run_dir):
            spec = accepted.get(name)
            self._by_name[name] = sup = self._make(name, spec)
            self._given[name] = spec
            log.info("guest.found_record", guest=name, state=sup.state)

    def hand(self, desired: Mapping[str, GuestSpec], waiting: frozenset[str]) -> None:
        """Every guest's accepted spec to its supervisor, boots by order; a new guest named in
        `waiting` (its taps or disks are not there yet, or another bhyve runs it) gets none."""
        news = [g for name, g in desired.items() if self._given.get(name) is not g]
        for spec in sorted(news, key=lambda g: (g.lifecycle.order, g.name)):
            sup = self._by_name.get(spec.name)
            if sup is not None:
                self._given[spec.name] = spec
                sup.desire(spec)
            elif spec.name not in waiting:
                self._given[spec.name] = spec
                self._by_name[spec.name] = self._make(spec.name, spec)
        for name, sup in self._by_name.items():
            if name not in desired and self._given.get(name) is not None:
                self._given[name] = None
                sup.desire(None)

    def poll(self, names: set[str] | None) -> bool:
        """Poll the supervisors `names` names and those whose timer is due; every one when
        `names` is None (or when no kernel reports exits). True when a boot ended or a guest
        was retired: a pass may have something to undo."""
        now = self._clock()
        freed = False
        for name, sup in list(self._by_name.items()):
            due = (d := sup.next_deadline()) is not None and d <= now
            if names is None or name in names or due or self._exits is None:
                live = not sup.settled
                sup.poll()
                freed |= live and sup.settled
            if sup.finished:
                del self._by_name[name]
                self._given.pop(name, None)
                self._log_paths.pop(name, None)
                freed = True
        for path in self._boot_logs.tick(now, self._live_logs):
            log.warning("guest.boot_log_cut", file=str(path), kept=str(path) + ".0")
        return freed

    def _live_logs(self) -> Iterator[Path]:
        """The boot logs that may be growing: those of live boots. Their paths are made once
        per guest: at 1,000 guests, making them at every look was most of an idle minute's
        CPU."""
        for name, sup in self._by_name.items():
            if not sup.settled:
                path = self._log_paths.get(name)
                if path is None:
                    path = self._log_paths[name] = guest_run_dir(self._run_dir, name) / BOOT_LOG
                yield path

    def unsteady(self) -> set[str]:
        return {n for n, s in self._by_name.items() if not s.steady}

    def shutdown(self, orders: Mapping[str, int]) -> None:
        """Every guest stops gracefully, signalled in reverse `order` (its spec's, or for a
        guest whose file is gone the one the ledger kept), stopping in parallel."""

        def order_of(sup: GuestSupervisor) -> tuple[int, str]:
            spec = sup.spec
            return (spec.lifecycle.order if spec else orders.get(sup.name, 0), sup.name)

        for sup in sorted(self._by_name.values(), key=order_of, reverse=True):
            sup.shutdown()

    def retime(self, stop_timeout: float, timings: Timings) -> None:
        """A reloaded config: for stops, backoffs and graces that begin from now on."""
        self.stop_timeout = stop_timeout
        self._timings = timings
        self._boot_logs.every = timings.boot_log_check
        for sup in self._by_name.values():
            sup.stop_timeout = stop_timeout
            sup.timings = timings

    def command(self, command: str, guest: str | None) -> tuple[bool, str]:
        """An operator's start, stop or restart; whether it was taken, and what to tell."""
        sup = self._by_name.get(guest or "")
        if command not in ("start", "stop", "restart"):
            return False, f"unknown command {command!r}"
        if sup is None:
            return False, f"no guest named {guest!r}"
        try:
            getattr(sup, command)()
        except CommandRefused as exc:
            return False, str(exc)
        log.info("operator.command", command=command, guest=sup.name, state=sup.state)
        return True, f"{command}: {sup.name} is {sup.state}"

    def set_problems(self, errors: Mapping[str, str]) -> None:
        for name, sup in self._by_name.items():
            sup.file_problem = errors.get(name)

    # -- making one ----------------------------------------------------------------------------

    def _make(self, name: str, spec: GuestSpec | None) -> GuestSupervisor:
        ops = ShimGuestOps(
            name,
            runner=self._host.runner,
            run_dir=self._run_dir,
            vmm_dir=self._vmm_dir,
            processes=self._process_table,
            on_watch=self._watch_exit,
        )
        return GuestSupervisor(
            name,
            spec=spec,
            ops=ops,
            prepare_boot=self._prepare_boot,
            clock=self._clock,
            log=structlog.get_logger("reconciler.guest"),
            stop_timeout=self.stop_timeout,
            timings=self._timings,
            wall_offset=self._wall_offset,
        )

    def _process_table(self) -> ProcessTable:
        """One process listing per pass at most, shared by every supervisor that adopts."""
        if self._processes is None:
            self._processes = list_processes(self._host.runner)
        return self._processes

    def _watch_exit(self, pid: int, name: str) -> None:
        if self._exits is not None and not self._exits.watch(pid, name):
            self._wake(name)  # already gone: look now
