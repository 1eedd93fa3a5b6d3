"""Prometheus metrics: every guest's status row and the daemon's passes, as one exposition.

A custom collector builds the per-guest families at scrape time from the last `DaemonStatus`
the daemon published, the same rows `status.json` holds: nothing per guest is computed or
updated for metrics during a pass, so a no-op pass costs what it cost without them. What only
the daemon knows (pass durations, actions, host command failures) are ordinary counters and a
histogram it updates once per pass. Serving and writing the exposition is
`host/exporter.py`'s; this module does no I/O.

Per guest (labels `guest`, `host`: this daemon's host name; only guests placed here):
    bhyve_guest_state{state}              1 for the guest's state, 0 for the others
    bhyve_guest_desired_state{state}      1 for what its file (or the daemon) wants
    bhyve_guest_boots_total               boots since this daemon started (an adoption is one)
    bhyve_guest_restarts_total{reason}    reboot, crash, poweroff (restart = "always"), operator
    bhyve_guest_last_exit_status{meaning} the last boot's exit status, sh-style (128+N: signal)
    bhyve_guest_boot_time_seconds         when the running boot started (epoch)
    bhyve_guest_uptime_seconds            how long it has run (0 when not running)
    bhyve_guest_backoff_seconds           time left before a crash-looping guest's restart
    bhyve_guest_cpus, bhyve_guest_memory_bytes   from its spec
    bhyve_guest_spec_valid                0 while its file is broken (it keeps its last good spec)
Per daemon (label `host`):
    bhyve_reconciler_pass_duration_seconds (histogram), bhyve_reconciler_passes_total,
    bhyve_reconciler_actions_total{kind,result}, bhyve_reconciler_host_command_failures_total
    {stage}, bhyve_reconciler_files{state}, bhyve_reconciler_watcher_healthy,
    bhyve_reconciler_guests_elsewhere, bhyve_reconciler_build_info{version,python},
    bhyve_reconciler_status_time_seconds (the published status's `updated_at`, to match a
    scrape with `status --json`).
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from importlib import metadata
from typing import get_args

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from reconciler.guestphase import RESTART_REASONS, Desired, State
from reconciler.status import DaemonStatus, GuestStatus

STATES: tuple[str, ...] = (*get_args(State), "waiting")
DESIRED: tuple[str, ...] = get_args(Desired)
FILE_STATES = ("valid", "invalid", "conflict", "refused")
# Passes take milliseconds when nothing changes and seconds when host commands run.
PASS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass(frozen=True)
class Sources:
    """What the collector reads at scrape time, each a cheap look at what the daemon keeps."""

    status: Callable[[], DaemonStatus | None]
    files: Callable[[], Iterable[str]]  # each conf.d file's state (valid, invalid, ...)
    watching: Callable[[], bool]
    host_name: Callable[[], str]
    clock: Callable[[], float] = time.time


def build_version() -> str:
    try:
        return metadata.version("bhyve-reconciler")
    except metadata.PackageNotFoundError:
        return "unknown"


class GuestCollector(Collector):
    """The families built from the published status at each scrape."""

    def __init__(self, sources: Sources) -> None:
        self._sources = sources
        self._version = build_version()

    def collect(self) -> Iterator[Metric]:
        src = self._sources
        host = src.host_name()
        status = src.status()
        yield from self._daemon(host, status)
        if status is not None:
            yield from guest_families(status.guests, host, src.clock())

    def _daemon(self, host: str, status: DaemonStatus | None) -> Iterator[Metric]:
        src = self._sources
        info = GaugeMetricFamily(
            "bhyve_reconciler_build_info", "the running version", labels=["version", "python"]
        )
        info.add_metric([self._version, platform.python_version()], 1)
        yield info
        watcher = GaugeMetricFamily(
            "bhyve_reconciler_watcher_healthy",
            "1 while the conf.d watcher runs (else changes wait for the resync)",
            labels=["host"],
        )
        watcher.add_metric([host], 1 if src.watching() else 0)
        yield watcher
        counts = dict.fromkeys(FILE_STATES, 0)
        for state in src.files():
            counts[state] = counts.get(state, 0) + 1
        files = GaugeMetricFamily(
            "bhyve_reconciler_files", "conf.d files by state", labels=["host", "state"]
        )
        for state, count in counts.items():
            files.add_metric([host, state], count)
        yield files
        if status is None:
            return
        passes = CounterMetricFamily(
            "bhyve_reconciler_passes", "convergence passes since start", labels=["host"]
        )
        passes.add_metric([host], status.passes)
        yield passes
        moment = GaugeMetricFamily(
            "bhyve_reconciler_status_time_seconds",
            "when the status these metrics come from was made (status.json updated_at)",
            labels=["host"],
        )
        moment.add_metric([host], status.updated_at)
        yield moment
        away = GaugeMetricFamily(
            "bhyve_reconciler_guests_elsewhere",
            "valid guest files placed on other hosts",
            labels=["host"],
        )
        away.add_metric([host], sum(g.state == "elsewhere" for g in status.guests))
        yield away


def guest_families(rows: Iterable[GuestStatus], host: str, now: float) -> list[Metric]:
    """The per-guest families for `rows` (guests placed elsewhere are left out: the host they
    are placed on reports them), as of wall-clock `now`."""
    labels = ["guest", "host"]

    def gauge(name: str, text: str, extra: tuple[str, ...] = ()) -> GaugeMetricFamily:
        return GaugeMetricFamily(name, text, labels=[*labels, *extra])

    state = gauge("bhyve_guest_state", "1 for the guest's state", ("state",))
    desired = gauge("bhyve_guest_desired_state", "1 for the state wanted", ("state",))
    boots = CounterMetricFamily(
        "bhyve_guest_boots", "boots since the daemon started", labels=labels
    )
    restarts = CounterMetricFamily(
        "bhyve_guest_restarts", "restarts by reason", labels=[*labels, "reason"]
    )
    last_exit = gauge("bhyve_guest_last_exit_status", "the last boot's exit status", ("meaning",))
    boot_time = gauge("bhyve_guest_boot_time_seconds", "start of the running boot (epoch)")
    uptime = gauge("bhyve_guest_uptime_seconds", "how long the running boot has run")
    backoff = gauge("bhyve_guest_backoff_seconds", "time left before a crash-loop restart")
    cpus = gauge("bhyve_guest_cpus", "virtual CPUs in the spec")
    memory = gauge("bhyve_guest_memory_bytes", "guest memory in the spec")
    valid = gauge("bhyve_guest_spec_valid", "0 while the guest's file is broken")
    for row in rows:
        if row.state == "elsewhere":
            continue
        key = [row.name, host]
        for s in STATES:
            state.add_metric([*key, s], 1 if row.state == s else 0)
        for d in DESIRED:
            desired.add_metric([*key, d], 1 if row.desired == d else 0)
        boots.add_metric(key, row.boots)
        for reason in RESTART_REASONS:
            restarts.add_metric([*key, reason], row.restarts.get(reason, 0))
        if row.last_exit is not None:
            last_exit.add_metric([*key, row.last_exit_meaning or "unknown"], row.last_exit)
        started = row.started_at
        if started is not None:
            boot_time.add_metric(key, started)
        running = started is not None and row.state == "running"
        uptime.add_metric(key, max(0.0, now - started) if started is not None and running else 0.0)
        wait = row.next_restart_at
        backoff.add_metric(key, max(0.0, wait - now) if wait is not None else 0.0)
        if row.cpus is not None:
            cpus.add_metric(key, row.cpus)
        if row.memory_bytes is not None:
            memory.add_metric(key, row.memory_bytes)
        valid.add_metric(key, 0 if row.spec_error else 1)
    families = (state, desired, boots, restarts, last_exit, boot_time, uptime, backoff)
    return [*families, cpus, memory, valid]


class DaemonMetrics:
    """The daemon's registry: the guest collector plus what only a pass knows."""

    def __init__(self, sources: Sources) -> None:
        self.sources = sources
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(GuestCollector(sources))
        self._passes = Histogram(
            "bhyve_reconciler_pass_duration_seconds",
            "how long a convergence pass took",
            ["host"],
            buckets=PASS_BUCKETS,
            registry=self.registry,
        )
        self._actions = Counter(
            "bhyve_reconciler_actions",
            "host actions by kind and result (done, unchanged, failed, skipped, pending)",
            ["host", "kind", "result"],
            registry=self.registry,
        )
        self._failures = Counter(
            "bhyve_reconciler_host_command_failures",
            "failed observations and actions",
            ["host", "stage"],
            registry=self.registry,
        )

    def pass_done(
        self, seconds: float, outcomes: Iterable[tuple[str, str]], unobserved: int
    ) -> None:
        """One pass: its duration, each action's (kind, result), failed observations."""
        host = self.sources.host_name()
        self._passes.labels(host).observe(seconds)
        for kind, result in outcomes:
            self._actions.labels(host, kind, result).inc()
            if result == "failed":
                self._failures.labels(host, "apply").inc()
        if unobserved:
            self._failures.labels(host, "observe").inc(unobserved)
