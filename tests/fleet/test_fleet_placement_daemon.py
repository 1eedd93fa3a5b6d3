"""Placement through the real daemon on a simulated host (issue 15): a guest placed here runs,
one placed elsewhere is validated but never acted on, a guest moved away stops as if its file
were removed, one moved here boots, and `placement` decides for files that name no host."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_harness import wait_for
from fleet_harness import FleetHost, fleet_guest

from reconciler.host.files import load_ledger


@pytest.fixture
def hv1(tmp_path: Path) -> Iterator[FleetHost]:
    host = FleetHost(tmp_path, "hv1")
    try:
        yield host
    finally:
        host.cleanup()


def rows(host: FleetHost, *flags: str) -> dict[str, dict[str, object]]:
    done = host.cli("status", "--json", *flags)
    assert done.returncode == 0, done.stderr
    return {g["name"]: g for g in json.loads(done.stdout)["guests"]}


def test_a_guest_placed_elsewhere_is_validated_but_never_acted_on(hv1: FleetHost) -> None:
    hv1.put("here", fleet_guest("here", "hv1", tap="tap0"))
    hv1.put("away", fleet_guest("away", "hv2", tap="tap0"))  # tap0 on hv2 is hv2's
    hv1.put("loose", fleet_guest("loose"))  # no host: nowhere, as placement is required
    hv1.put("broken", fleet_guest("broken", "hv2").replace("cpus = 2", "cpus = 0"))
    hv1.start()
    hv1.wait_running("here")

    for name in ("away", "loose"):
        assert hv1.sim.boots(name) == 0 and hv1.commands_for(name) == []
        assert not hv1.sim.path(f"/vm/{name}/disk0.img").exists()
    assert "here" in load_ledger(hv1.state_dir).owners()
    assert load_ledger(hv1.state_dir).owners() <= {"here"}
    plan = hv1.cli("plan")
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert "away" not in plan.stdout and "loose" not in plan.stdout
    assert "broken.toml: cpus" in plan.stderr  # validated like any other file

    assert set(rows(hv1)) == {"here"}
    everything = rows(hv1, "--all")
    assert (everything["away"]["state"], everything["away"]["host"]) == ("elsewhere", "hv2")
    assert (everything["loose"]["state"], everything["loose"]["host"]) == ("elsewhere", None)
    table = hv1.cli("status", "--all").stdout
    assert "elsewhere (hv2)" in table and "unplaced (no host key)" in table
    short = hv1.cli("status").stdout
    assert "away" not in short and "2 guest(s) placed on other hosts" in short
    status = hv1.status()
    assert status is not None
    assert any(p.startswith(f"{hv1.conf_dir}/broken.toml: cpus") for p in status.problems)


def test_a_guest_moved_away_stops_gracefully_and_its_host_resources_are_undone(
    hv1: FleetHost,
) -> None:
    hv1.put("web", fleet_guest("web", "hv1", tap="tap0"))
    hv1.start()
    pid = hv1.wait_running("web")
    disk = hv1.sim.path("/vm/web/disk0.img")
    assert disk.exists() and "tap0" in hv1.sim.interfaces()

    hv1.put("web", fleet_guest("web", "hv2", tap="tap0"))

    wait_for(lambda: rows(hv1, "--all").get("web", {}).get("state") == "elsewhere", "web gone")
    stopping = hv1.events("guest.stopping", guest="web")
    assert [e["pid"] for e in stopping] == [pid]
    assert hv1.events("guest.forced_poweroff", guest="web") == []  # the ACPI way
    assert hv1.bhyve_processes("web") == [] and "web" not in hv1.sim.vms()
    assert disk.exists()  # disks are kept
    wait_for(lambda: "tap0" not in hv1.sim.interfaces(), "tap0 to be destroyed")
    assert "web" not in load_ledger(hv1.state_dir).owners()
    assert hv1.sim.boots("web") == 1


def test_a_guest_moved_here_boots_as_a_new_guest(hv1: FleetHost) -> None:
    hv1.put("web", fleet_guest("web", "hv2"))
    hv1.start()
    assert rows(hv1, "--all")["web"]["state"] == "elsewhere"
    assert hv1.sim.boots("web") == 0

    hv1.put("web", fleet_guest("web", "hv1"))

    hv1.wait_running("web")
    row = hv1.guest("web")
    assert row is not None and row.boots == 1 and row.host is None


def test_placement_any_runs_unplaced_files_and_required_does_not(hv1: FleetHost) -> None:
    hv1.configure(placement="any")
    hv1.put("loose", fleet_guest("loose"))
    hv1.put("away", fleet_guest("away", "hv2"))
    proc = hv1.start()
    hv1.wait_running("loose")
    assert hv1.sim.boots("away") == 0

    hv1.configure(placement="required")
    proc.send_signal(signal.SIGHUP)  # reload: the unplaced guest is no longer this host's

    wait_for(lambda: rows(hv1, "--all").get("loose", {}).get("state") == "elsewhere", "loose")
    assert hv1.bhyve_processes("loose") == []
    assert [e["guest"] for e in hv1.events("guest.stopping")] == ["loose"]
    assert hv1.sim.boots("away") == 0
