"""A new zvol's /dev/zvol node may appear a moment after `zfs create` returns (GEOM and devfs
make it asynchronously): the driver waits for it, briefly and within a bound, so the guest's
first boot does not fail on a missing disk. The wait's timing is injected."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from reconciler.actions import CreateZvol
from reconciler.host.freebsd import FreeBSDHost
from reconciler.host.runner import SubprocessRunner
from reconciler.sim import SimulatedHost

VOLUME = CreateZvol(zvol="zroot/vm/db", size_text="1G", guest="db")
NODE = "/dev/zvol/zroot/vm/db"


class Clock:
    """A fake clock and sleep: sleeping advances the clock, and may do something first."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self.on_sleep: Callable[[], object] = lambda: None

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.on_sleep()
        self.now += seconds


@pytest.fixture
def sim(tmp_path: Path) -> SimulatedHost:
    return SimulatedHost(tmp_path / "host").setup()


def driver(sim: SimulatedHost, clock: Clock, wait: float = 5.0) -> FreeBSDHost:
    return FreeBSDHost(
        SubprocessRunner(sim.env()),
        root=sim.root,
        zvol_node_wait=wait,
        sleep=clock.sleep,
        clock=lambda: clock.now,
    )


def test_the_driver_waits_for_a_late_node(sim: SimulatedHost) -> None:
    sim.delay_zvol_nodes(math.inf)  # held until released
    clock = Clock()
    clock.on_sleep = sim.release_zvol_nodes
    host = driver(sim, clock)

    assert host.apply(VOLUME) is True
    assert host.host_path(NODE).exists()
    assert len(clock.sleeps) == 1


def test_a_node_already_there_costs_no_wait(sim: SimulatedHost) -> None:
    clock = Clock()
    assert driver(sim, clock).apply(VOLUME) is True
    assert clock.sleeps == []


def test_the_wait_is_bounded_and_the_volume_is_still_ours(sim: SimulatedHost) -> None:
    sim.delay_zvol_nodes(math.inf)
    clock = Clock()
    with capture_logs() as logs:
        created = driver(sim, clock, wait=2.0).apply(VOLUME)
    assert created is True  # it was made: the ledger must own it, node or not
    assert not sim.path(NODE).exists()
    assert 2.0 <= clock.now <= 2.0 + max(clock.sleeps)
    assert [e for e in logs if e["event"] == "host.zvol_node_missing"] == [
        {"event": "host.zvol_node_missing", "log_level": "warning", "zvol": "zroot/vm/db",
         "node": NODE, "waited": clock.now}
    ]  # fmt: skip
