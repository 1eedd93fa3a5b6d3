"""Shared storage through two real daemons (issue 15): two simulated hosts, each with its own
kernel, conf.d checkout, run_dir and state_dir, see one disk directory (/nfs, as an NFS mount
would be). Through a move they never run the guest at the same time, a released lock is taken
at once, and a stale lock (its host died) is taken over after the stale period."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_harness import event_time, wait_for
from fleet_harness import FleetHost, fleet_guest

from reconciler.sharedlock import parse_record

LOCK = "web/disk0.img.lock"


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[tuple[FleetHost, FleetHost, Path]]:
    nfs = tmp_path / "nfs"
    nfs.mkdir()
    hosts = (FleetHost(tmp_path, "hv1", shared=nfs), FleetHost(tmp_path, "hv2", shared=nfs))
    try:
        yield hosts[0], hosts[1], nfs
    finally:
        for host in hosts:
            host.cleanup()


class OverlapWatch:
    """Looks, as often as it can, at both hosts' live bhyve processes of one guest, and keeps
    every moment it found both (the failure this feature exists to prevent)."""

    def __init__(self, name: str, *hosts: FleetHost) -> None:
        self.name, self.hosts = name, hosts
        self.looks = 0
        self.both: list[list[list[int]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            seen = [host.bhyve_processes(self.name) for host in self.hosts]
            self.looks += 1
            if all(seen):
                self.both.append(seen)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def holder(nfs: Path) -> str | None:
    path = nfs / LOCK
    record = parse_record(path.read_bytes()) if path.exists() else None
    return None if record is None else record.host


def waiting_row(host: FleetHost, why: str) -> bool:
    row = host.guest("web")
    return row is not None and row.state == "waiting" and row.last_error == why


def test_a_move_never_runs_the_guest_twice_and_the_released_lock_is_taken_at_once(
    fleet: tuple[FleetHost, FleetHost, Path],
) -> None:
    hv1, hv2, nfs = fleet
    for host in (hv1, hv2):
        host.put("web", fleet_guest("web", "hv1", shared=True))
    hv1.sim.set_acpi("web", False)  # hv1's stop takes its whole stop_timeout: a long window
    hv1.start()
    hv2.start()
    hv1.wait_running("web")
    assert holder(nfs) == "hv1"
    watch = OverlapWatch("web", hv1, hv2)

    # hv2's checkout is pulled first: the guest is placed on hv2 there, but hv1 still runs it.
    hv2.put("web", fleet_guest("web", "hv2", shared=True))
    wait_for(lambda: waiting_row(hv2, "waiting for hv1 to release"), "hv2 to wait for hv1")
    assert "waiting for hv1 to release" in hv2.cli("status").stdout
    assert hv2.sim.boots("web") == 0
    # Then hv1's: it stops the guest (ACPI ignored: forced power-off after 1 s), releases the
    # lock, and hv2 takes it at its next look (its resync is an hour away).
    hv1.put("web", fleet_guest("web", "hv2", shared=True))
    hv2.wait_running("web")
    watch.stop()

    assert watch.looks > 10 and watch.both == []
    assert holder(nfs) == "hv2"
    assert hv1.events("guest.forced_poweroff", guest="web")
    exited = event_time(hv1.events("guest.exited", guest="web")[-1])
    released = event_time(hv1.events("lock.released", guest="web")[-1])
    acquired = event_time(hv2.events("lock.acquired", guest="web")[-1])
    booting = event_time(hv2.events("guest.booting", guest="web")[-1])
    assert exited <= released <= acquired <= booting
    assert hv2.events("lock.taken_over") == []  # taken free, not broken
    assert hv1.sim.boots("web") == 1 and hv2.sim.boots("web") == 1


def test_a_stale_lock_is_taken_over_once_its_host_is_gone(
    fleet: tuple[FleetHost, FleetHost, Path],
) -> None:
    hv1, hv2, nfs = fleet
    for host in (hv1, hv2):
        host.configure(resync="0.3s")  # stale after 4 x 0.3 s without a refresh
        host.put("web", fleet_guest("web", "hv1", shared=True))
    hv1.start()
    hv1.wait_running("web")
    hv1.cleanup()  # hv1 loses power: its daemon and its guest die, the lock stays
    assert hv1.bhyve_processes("web") == [] and holder(nfs) == "hv1"

    hv2.put("web", fleet_guest("web", "hv2", shared=True))
    hv2.start()
    wait_for(lambda: waiting_row(hv2, "waiting for hv1 to release"), "hv2 to wait for hv1")

    hv2.wait_running("web")

    assert holder(nfs) == "hv2"
    taken = hv2.events("lock.taken_over", guest="web")
    assert [e["from_host"] for e in taken] == ["hv1"]


def test_a_standby_boots_the_guest_when_the_active_host_stops(
    fleet: tuple[FleetHost, FleetHost, Path],
) -> None:
    hv1, hv2, nfs = fleet
    for host in (hv1, hv2):
        host.configure(placement="any")  # no `host` key: either host may run it, one at a time
        host.put("web", fleet_guest("web", shared=True))
    active = hv1.start()
    hv1.wait_running("web")
    hv2.start()
    wait_for(lambda: waiting_row(hv2, "waiting for hv1 to release"), "hv2 to stand by")
    watch = OverlapWatch("web", hv1, hv2)

    assert hv1.stop_daemon(active) == 0  # service stop: guests stop, then locks are released

    hv2.wait_running("web")
    watch.stop()
    assert watch.both == []
    assert holder(nfs) == "hv2"
    assert hv1.events("lock.released", guest="web")


def test_a_stopping_daemon_keeps_its_locks_fresh_until_its_guests_are_down(
    fleet: tuple[FleetHost, FleetHost, Path],
) -> None:
    hv1, hv2, _nfs = fleet
    for host in (hv1, hv2):
        # The stop outlasts the stale period (4 x 0.3 s) several times over.
        host.configure(placement="any", resync="0.3s", stop_timeout="3s")
        host.put("web", fleet_guest("web", shared=True))
    hv1.sim.set_acpi("web", False)
    active = hv1.start()
    hv1.wait_running("web")
    hv2.start()
    wait_for(lambda: waiting_row(hv2, "waiting for hv1 to release"), "hv2 to stand by")
    watch = OverlapWatch("web", hv1, hv2)

    assert hv1.stop_daemon(active) == 0

    hv2.wait_running("web")
    watch.stop()
    assert watch.both == []
    assert hv1.events("guest.forced_poweroff", guest="web")
    assert hv2.events("lock.taken_over") == []
