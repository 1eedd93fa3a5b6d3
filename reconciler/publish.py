"""What the daemon shows the world: run_dir/status.json and, when configured, Prometheus.

Edge code: one `Publisher` writes the status (atomically, only when it changed) and keeps the
status it last wrote, which the metrics collector reads at scrape time from another thread, so
`/metrics` and `status.json` say the same thing to the moment. A failed write (a full run_dir)
is logged and tried again with the next change; it never stops supervision.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import structlog

from reconciler.config import DaemonConfig
from reconciler.converge import PassResult
from reconciler.status import DaemonStatus, StatusWriter

if TYPE_CHECKING:
    from reconciler.host.exporter import MetricsExporter
    from reconciler.metrics import DaemonMetrics

log = structlog.get_logger("reconciler.daemon")


class Publisher:
    def __init__(
        self,
        config: DaemonConfig,
        *,
        files: Callable[[], Iterable[str]],
        watching: Callable[[], bool],
        host_name: Callable[[], str],
        wall_clock: Callable[[], float],
    ) -> None:
        self._config = config
        self._writer = StatusWriter(config.run_dir)
        self._published: DaemonStatus | None = None
        self._exporter: MetricsExporter | None = None
        self.metrics: DaemonMetrics | None = None
        if config.metrics_listen is not None or config.metrics_file is not None:
            # Imported only here: prometheus_client (with http, email, urllib) costs every
            # start of a daemon without metrics some 50 ms of CPU.
            from reconciler.metrics import DaemonMetrics, Sources

            self.metrics = DaemonMetrics(
                Sources(
                    status=lambda: self._published,
                    files=files,
                    watching=watching,
                    host_name=host_name,
                    clock=wall_clock,
                )
            )

    def start(self) -> None:
        if self.metrics is not None:
            from reconciler.host.exporter import start_exporter

            self._exporter = start_exporter(self.metrics, self._config)

    def stop(self) -> None:
        if self._exporter is not None:
            self._exporter.stop()

    def publish(self, status: DaemonStatus) -> None:
        try:
            self._writer.write_if_changed(status)
            self._published = self._writer.last
        except OSError as exc:  # a full run_dir: report, keep supervising, try again later
            self._published = status
            log.error("status.write_failed", file=str(self._writer.path), error=str(exc))

    def pass_done(self, seconds: float, result: PassResult | None) -> None:
        """A pass's duration and what its actions did (None: its observation failed)."""
        if self.metrics is None:
            return
        if result is None:
            self.metrics.pass_done(seconds, (), unobserved=1)
            return
        outcomes = ((type(o.action).__name__, o.status) for o in result.outcomes)
        self.metrics.pass_done(seconds, outcomes, len(result.facts.unobserved))
