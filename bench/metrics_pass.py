"""Metrics figures for bench/run.py: the no-op pass with metrics on beside the same pass with
metrics off, and what a scrape and a metrics_file write cost (no pass pays them)."""

from __future__ import annotations

import statistics
import time
import urllib.request
from dataclasses import replace
from pathlib import Path

from prometheus_client import generate_latest
from world import Row, make_world, seed_network, spread, verdict, write_specs

from reconciler.daemon import Daemon
from reconciler.host.exporter import MetricsExporter, start_exporter


def bench_metrics(tmp: Path, repeat: int, n: int = 1000) -> list[Row]:
    """The no-op pass at n guests with metrics on (/metrics served on loopback, metrics_file
    written by its thread), beside the same pass with metrics off, alternating so both see
    the same noisy machine; then what a scrape and a file write cost, which no pass pays."""
    daemons: dict[str, Daemon] = {}
    exporters: list[MetricsExporter] = []
    for label in ("off", "on"):
        world = make_world(tmp / f"metrics-{label}")
        if label == "on":
            world.config = replace(
                world.config,
                metrics_listen="127.0.0.1:0",
                metrics_file=tmp / "metrics.prom",
            )
        seed_network(world, n)
        write_specs(world.conf_dir, range(n), tap=True)
        daemon = daemons[label] = Daemon(world.config, world.host())
        exporter = start_exporter(daemon.publisher.metrics, world.config)
        if exporter is not None:
            exporters.append(exporter)
        daemon.reconcile()  # converge
        daemon.reconcile()
    cpu: dict[str, list[float]] = {"off": [], "on": []}
    try:
        for _ in range(repeat):
            for label, daemon in daemons.items():
                c0 = time.process_time()
                daemon.reconcile()
                cpu[label].append(time.process_time() - c0)
        metrics = daemons["on"].publisher.metrics
        assert metrics is not None and exporters[0].address is not None
        scrape, write, http = [], [], []
        url = f"http://127.0.0.1:{exporters[0].address[1]}/metrics"
        for _ in range(repeat):
            c0 = time.process_time()
            text = generate_latest(metrics.registry)
            scrape.append(time.process_time() - c0)
            w0 = time.perf_counter()
            exporters[0].write_file()
            write.append(time.perf_counter() - w0)
            w0 = time.perf_counter()
            with urllib.request.urlopen(url, timeout=30) as response:
                response.read()
            http.append(time.perf_counter() - w0)
    finally:
        for exporter in exporters:
            exporter.stop()
    off, on = statistics.median(cpu["off"]), statistics.median(cpu["on"])
    return [
        (f"no-op pass, {n} guests, metrics off: daemon CPU", spread(cpu["off"]), "-", "-"),
        (
            f"no-op pass, {n} guests, metrics on: daemon CPU",
            spread(cpu["on"]),
            "within 1 ms of off",
            verdict(on <= off + 0.001),
        ),
        (
            f"metrics for {n} guests: building the exposition (a scrape)",
            f"{spread(scrape)}, {len(text) // 1024} KiB",
            "-",
            "-",
        ),
        (f"  /metrics over HTTP, {n} guests (wall)", spread(http), "-", "-"),
        (f"  metrics_file rewrite, {n} guests (wall)", spread(write), "-", "-"),
    ]
