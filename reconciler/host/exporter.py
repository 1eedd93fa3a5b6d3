"""Serving the daemon's metrics: `/metrics` over HTTP, and a file for node_exporter.

Edge code over `metrics.py`'s registry. `metrics_listen` starts prometheus_client's HTTP server
in a thread of its own; `metrics_file` is rewritten (atomically, through a temporary name that
node_exporter's textfile collector ignores: it reads only `*.prom`) by a second thread, at most
every `metrics_interval` and only when the daemon's status changed, and once more when the
daemon exits. Both threads only read what the daemon
published; neither decides anything, and a failed write is logged and tried again.

The FreeBSD port of node_exporter reads `node_exporter_textfile_dir` (rc.conf; default
`/var/tmp/node_exporter`, sysutils/node_exporter/files/node_exporter.in), so
`metrics_file = "/var/tmp/node_exporter/bhyve_reconciler.prom"` is all it takes.
"""

from __future__ import annotations

import threading
from pathlib import Path
from wsgiref.simple_server import WSGIServer

import structlog
from prometheus_client import generate_latest, start_http_server

from reconciler.config import DaemonConfig, listen_address
from reconciler.errors import DaemonError
from reconciler.host.files import write_atomic
from reconciler.metrics import DaemonMetrics

log = structlog.get_logger("reconciler.metrics")


class MetricsExporter:
    def __init__(
        self,
        metrics: DaemonMetrics,
        *,
        listen: str | None,
        file: Path | None,
        interval: float,
    ) -> None:
        self.metrics = metrics
        self._listen = listen
        self._file = file
        self._interval = interval
        self._server: WSGIServer | None = None
        self._stop = threading.Event()
        self._writer: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int] | None:
        """Where /metrics is served (the real port when the config asked for port 0)."""
        if self._server is None:
            return None
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        """Raises DaemonError when the address cannot be bound."""
        if self._listen is not None:
            parsed = listen_address(self._listen)
            assert parsed is not None  # the config validated it
            try:
                self._server, _thread = start_http_server(
                    parsed[1], parsed[0], registry=self.metrics.registry
                )
            except OSError as exc:
                raise DaemonError(f"metrics_listen {self._listen}: {exc.strerror}") from exc
            host, port = self.address or ("", 0)
            log.info("metrics.listening", address=host, port=port)
        if self._file is not None:
            self._writer = threading.Thread(target=self._write_loop, daemon=True)
            self._writer.start()

    def stop(self) -> None:
        self._stop.set()
        if self._writer is not None:
            self._writer.join(timeout=10)
        if self._file is not None:
            self.write_file()  # the last word: guests as the daemon left them
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def write_file(self) -> bool:
        if self._file is None:
            return False
        try:
            text = generate_latest(self.metrics.registry).decode()
            write_atomic(self._file, text, mode=0o644, durable=False)
        except OSError as exc:
            log.error("metrics.write_failed", file=str(self._file), error=exc.strerror)
            return False
        return True

    def _write_loop(self) -> None:
        """Every interval, if the status changed since the last write: building the exposition
        of a thousand guests costs a tenth of a second, which an idle daemon should not pay
        every few seconds for nothing."""
        written: object = None
        while not self._stop.is_set():
            status = self.metrics.sources.status()
            if status is None or status is not written:
                written = status if self.write_file() else None
            self._stop.wait(self._interval)


def start_exporter(metrics: DaemonMetrics | None, config: DaemonConfig) -> MetricsExporter | None:
    """The daemon's exporter, started. Metrics are no guest's lifeline: an address in use is
    logged, and the daemon runs on without the server."""
    if metrics is None:
        return None
    exporter = MetricsExporter(
        metrics,
        listen=config.metrics_listen,
        file=config.metrics_file,
        interval=config.timings.metrics_interval,
    )
    try:
        exporter.start()
    except DaemonError as exc:
        log.error("metrics.failed", error=str(exc))
    return exporter
