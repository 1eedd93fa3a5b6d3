"""Prometheus metrics (issue 15): the exposition, parsed with prometheus_client's own parser,
says what status says: unit cases on hand-made rows, and the real daemon's /metrics and
metrics_file checked against `status --json` for the same moment."""

from __future__ import annotations

import json
import re
import socket
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from daemon_harness import wait_for
from fleet_harness import FleetHost, fleet_guest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from reconciler.metrics import STATES, DaemonMetrics, Sources
from reconciler.status import DaemonStatus, GuestStatus

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float | None:
    return found.get((name, frozenset(labels.items())))


NOW = 1_700_000_100.0
ROWS = (
    GuestStatus("web", "running", pid=42, started_at=NOW - 90, boots=3, last_exit=0,
                last_exit_meaning="reboot", cpus=2, memory_bytes=256 << 20,
                restarts={"reboot": 2, "crash": 0, "poweroff": 0, "operator": 1}),
    GuestStatus("db", "crash-loop", next_restart_at=NOW + 8, boots=4, last_exit=4,
                last_exit_meaning="error", cpus=4, memory_bytes=1 << 30,
                spec_error="db.toml: cpus: must be at least 1"),
    GuestStatus("mail", "waiting", host="hv1", last_error="waiting for hv1 to release", cpus=1,
                memory_bytes=512 << 20),
    GuestStatus("away", "elsewhere", desired="running", host="hv2", cpus=8),
)  # fmt: skip
STATUS = DaemonStatus(pid=1, started_at=NOW - 1000, updated_at=NOW - 1, passes=17, guests=ROWS)


def metrics(status: DaemonStatus | None = STATUS, watching: bool = True) -> DaemonMetrics:
    return DaemonMetrics(
        Sources(
            status=lambda: status,
            files=lambda: ["valid", "valid", "invalid", "conflict"],
            watching=lambda: watching,
            host_name=lambda: "hv3",
            clock=lambda: NOW,
        )
    )


def test_guest_metrics_follow_the_status_rows() -> None:
    found = samples(generate_latest(metrics().registry).decode())
    web = {"guest": "web", "host": "hv3"}
    for state in STATES:
        assert value(found, "bhyve_guest_state", **web, state=state) == (state == "running")
    assert value(found, "bhyve_guest_desired_state", **web, state="running") == 1
    assert value(found, "bhyve_guest_desired_state", **web, state="stopped") == 0
    assert value(found, "bhyve_guest_boots_total", **web) == 3
    assert value(found, "bhyve_guest_restarts_total", **web, reason="reboot") == 2
    assert value(found, "bhyve_guest_restarts_total", **web, reason="operator") == 1
    assert value(found, "bhyve_guest_restarts_total", **web, reason="crash") == 0
    assert value(found, "bhyve_guest_last_exit_status", **web, meaning="reboot") == 0
    assert value(found, "bhyve_guest_uptime_seconds", **web) == 90
    assert value(found, "bhyve_guest_boot_time_seconds", **web) == NOW - 90
    assert value(found, "bhyve_guest_backoff_seconds", **web) == 0
    assert value(found, "bhyve_guest_cpus", **web) == 2
    assert value(found, "bhyve_guest_memory_bytes", **web) == 256 << 20
    assert value(found, "bhyve_guest_spec_valid", **web) == 1

    db = {"guest": "db", "host": "hv3"}
    assert value(found, "bhyve_guest_state", **db, state="crash-loop") == 1
    assert value(found, "bhyve_guest_backoff_seconds", **db) == 8
    assert value(found, "bhyve_guest_uptime_seconds", **db) == 0
    assert value(found, "bhyve_guest_last_exit_status", **db, meaning="error") == 4
    assert value(found, "bhyve_guest_spec_valid", **db) == 0
    mail = {"guest": "mail", "host": "hv3"}
    assert value(found, "bhyve_guest_state", **mail, state="waiting") == 1
    # A guest placed on another host is that host's to report.
    assert not [key for key in found if ("guest", "away") in key[1]]


def test_daemon_metrics() -> None:
    m = metrics(watching=False)
    m.pass_done(0.004, [("CreateInterface", "done"), ("CreateInterface", "failed")], 1)
    m.pass_done(0.2, [("StartGuest", "pending")], 0)
    found = samples(generate_latest(m.registry).decode())
    host = {"host": "hv3"}
    assert value(found, "bhyve_reconciler_passes_total", **host) == 17
    assert value(found, "bhyve_reconciler_pass_duration_seconds_count", **host) == 2
    assert value(found, "bhyve_reconciler_pass_duration_seconds_bucket", **host, le="0.005") == 1
    assert value(found, "bhyve_reconciler_pass_duration_seconds_sum", **host) == pytest.approx(
        0.204
    )
    done = {"kind": "CreateInterface", "result": "done"}
    assert value(found, "bhyve_reconciler_actions_total", **host, **done) == 1
    assert value(found, "bhyve_reconciler_actions_total", **host, kind="StartGuest",
                 result="pending") == 1  # fmt: skip
    assert value(found, "bhyve_reconciler_host_command_failures_total", **host, stage="apply") == 1
    assert value(found, "bhyve_reconciler_host_command_failures_total", **host,
                 stage="observe") == 1  # fmt: skip
    assert value(found, "bhyve_reconciler_files", **host, state="valid") == 2
    assert value(found, "bhyve_reconciler_files", **host, state="invalid") == 1
    assert value(found, "bhyve_reconciler_files", **host, state="refused") == 0
    assert value(found, "bhyve_reconciler_watcher_healthy", **host) == 0
    assert value(found, "bhyve_reconciler_guests_elsewhere", **host) == 1
    assert value(found, "bhyve_reconciler_status_time_seconds", **host) == NOW - 1
    assert [k for k in found if k[0] == "bhyve_reconciler_build_info"]


def test_no_status_yet_gives_daemon_metrics_only() -> None:
    found = samples(generate_latest(metrics(status=None).registry).decode())
    assert not [k for k in found if k[0].startswith("bhyve_guest_")]
    assert value(found, "bhyve_reconciler_watcher_healthy", host="hv3") == 1


# -- the real daemon ---------------------------------------------------------------------------


@pytest.fixture
def hv3(tmp_path: Path) -> Iterator[FleetHost]:
    host = FleetHost(tmp_path, "hv3")
    try:
        yield host
    finally:
        host.cleanup()


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return str(response.read().decode())


def status_json(host: FleetHost) -> dict[str, Any]:
    done = host.cli("status", "--json")
    assert done.returncode == 0, done.stderr
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def same_moment(read: Any, host: FleetHost) -> tuple[Samples, dict[str, Any], float, float]:
    """An exposition and `status --json` made from the same status (its updated_at)."""

    def probe() -> tuple[Samples, dict[str, Any], float, float] | None:
        before = time.time()
        found = samples(read())
        after = time.time()
        status = status_json(host)
        moment = value(found, "bhyve_reconciler_status_time_seconds", host="hv3")
        return (found, status, before, after) if moment == status["updated_at"] else None

    return wait_for(probe, "metrics and status.json of the same moment")


def check_against_status(
    found: Samples, status: dict[str, Any], before: float, after: float
) -> None:
    assert value(found, "bhyve_reconciler_passes_total", host="hv3") == status["passes"]
    for row in status["guests"]:
        key = {"guest": row["name"], "host": "hv3"}
        if row["state"] == "elsewhere":
            assert value(found, "bhyve_guest_cpus", **key) is None
            continue
        for state in STATES:
            assert value(found, "bhyve_guest_state", **key, state=state) == (state == row["state"])
        assert value(found, "bhyve_guest_desired_state", **key, state=row["desired"]) == 1
        assert value(found, "bhyve_guest_boots_total", **key) == row["boots"]
        for reason, count in row["restarts"].items():
            assert value(found, "bhyve_guest_restarts_total", **key, reason=reason) == count
        if row["last_exit"] is not None:
            meaning = row["last_exit_meaning"]
            assert (
                value(found, "bhyve_guest_last_exit_status", **key, meaning=meaning)
                == row["last_exit"]
            )
        assert value(found, "bhyve_guest_cpus", **key) == row["cpus"]
        assert value(found, "bhyve_guest_memory_bytes", **key) == row["memory_bytes"]
        assert value(found, "bhyve_guest_spec_valid", **key) == (row["spec_error"] is None)
        uptime = value(found, "bhyve_guest_uptime_seconds", **key)
        backoff = value(found, "bhyve_guest_backoff_seconds", **key)
        assert uptime is not None and backoff is not None
        if row["state"] == "running":
            assert before - row["started_at"] <= uptime <= after - row["started_at"]
            assert value(found, "bhyve_guest_boot_time_seconds", **key) == row["started_at"]
        else:
            assert uptime == 0
        if row["next_restart_at"] is not None:
            assert row["next_restart_at"] - after <= backoff <= row["next_restart_at"] - before
        else:
            assert backoff == 0


def test_metrics_served_and_written_agree_with_status(hv3: FleetHost) -> None:
    prom = hv3.tmp / "textfile" / "bhyve_reconciler.prom"
    hv3.configure(
        extra=f'metrics_listen = "127.0.0.1:0"\nmetrics_file = "{prom}"\n'
        '[timings]\ncrash_backoff = "10m"\nmetrics_interval = "100ms"\n'
    )
    hv3.put("web", fleet_guest("web", "hv3"))
    hv3.put("db", fleet_guest("db", "hv3"))
    hv3.put("away", fleet_guest("away", "hv2"))
    hv3.start()
    first = hv3.wait_running("web")
    hv3.wait_running("db")
    hv3.sim.guest_do("web", "reboot")
    hv3.wait_running("web", not_pid=first)
    assert hv3.cli("restart", "web").returncode == 0
    hv3.sim.guest_do("db", "fail")
    hv3.wait_state("db", "crash-loop")
    broken = fleet_guest("db", "hv3").replace("cpus = 2", "cpus = 0")
    hv3.put("db", broken)
    wait_for(lambda: (hv3.guest("db") or GuestStatus("", "")).spec_error, "db's file error")
    listening = hv3.events("metrics.listening")
    assert [e["address"] for e in listening] == ["127.0.0.1"]
    port = listening[0]["port"]

    found, status, before, after = same_moment(lambda: scrape(port), hv3)

    check_against_status(found, status, before, after)
    web = {"guest": "web", "host": "hv3"}
    assert value(found, "bhyve_guest_restarts_total", **web, reason="reboot") == 1
    assert value(found, "bhyve_guest_restarts_total", **web, reason="operator") == 1
    db = {"guest": "db", "host": "hv3"}
    assert value(found, "bhyve_guest_state", **db, state="crash-loop") == 1
    assert value(found, "bhyve_guest_restarts_total", **db, reason="crash") == 1
    assert value(found, "bhyve_guest_spec_valid", **db) == 0
    assert value(found, "bhyve_reconciler_files", host="hv3", state="invalid") == 1
    assert value(found, "bhyve_reconciler_guests_elsewhere", host="hv3") == 1
    assert value(found, "bhyve_reconciler_watcher_healthy", host="hv3") == 1

    found, status, _before, after = same_moment(lambda: prom.read_text(), hv3)
    # The file was made from that status, so after it was published and before it was read.
    check_against_status(found, status, status["updated_at"], after)
    assert not [p for p in prom.parent.iterdir() if p.name != prom.name]  # no temporary left


def test_an_address_in_use_is_reported_and_guests_run_on(hv3: FleetHost) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        hv3.configure(extra=f'metrics_listen = "127.0.0.1:{port}"\n')
        hv3.put("web", fleet_guest("web", "hv3"))
        hv3.start()
        hv3.wait_running("web")
        failed = hv3.events("metrics.failed")
        assert len(failed) == 1 and re.search(
            r"metrics_listen 127\.0\.0\.1:\d+: ", failed[0]["error"]
        )
