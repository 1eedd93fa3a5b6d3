"""Shared-storage locks on disk (host/locks.py): taking, refreshing, breaking and releasing
them, by racing processes and by two keepers that play two hosts over one directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from daemon_harness import wait_for

from reconciler.host.locks import LockFile, SharedLocks
from reconciler.sharedlock import STALE_AFTER, LockRecord, parse_record
from reconciler.spec import Disk, GuestSpec, Lifecycle

# Each racer is a host's keeper in a process of its own: it looks at the lock once (so a stale
# record has been seen), waits for the starting gun (a file), then, the stale period later on
# its clock, asks to run the guest. Real processes: the test is about the file system.
RACER = """
import os, sys, time
from pathlib import Path
from reconciler.host.locks import SharedLocks
from reconciler.spec import Disk, GuestSpec, Lifecycle
root, me, gun = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
now = [0.0]
keeper = SharedLocks(host_path=lambda p: root / p.lstrip("/"), clock=lambda: now[0],
                     wall_clock=time.time, take=True)
web = GuestSpec(name="web", disks=(Disk(path="/nfs/web/disk0.img"),),
                lifecycle=Lifecycle(shared_storage=True))
if (root / "nfs/web/disk0.img.lock").exists():
    keeper.admit({"web": web}, frozenset(), me=me, interval=1.0)
(root / f"ready-{me}").touch()
while not os.path.exists(gun):
    time.sleep(0.001)
now[0] = 1000.0
desired, waiting = keeper.admit({"web": web}, frozenset(), me=me, interval=1.0)
print("won" if "web" in desired else "lost")
"""


def race(tmp_path: Path, racers: int = 8) -> list[str]:
    gun = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(tmp_path), f"hv{i}", str(gun)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(racers)
    ]
    # Every racer has had its first look before any of them acts.
    for i in range(racers):
        ready = tmp_path / f"ready-hv{i}"
        wait_for(ready.exists, f"racer hv{i}", 60.0)
    gun.touch()
    # The last line: structlog, unconfigured, logs to stdout before it.
    results = [p.communicate(timeout=60)[0].strip().splitlines()[-1] for p in procs]
    assert all(r in ("won", "lost") for r in results), results
    return [f"hv{i}" for i, r in enumerate(results) if r == "won"]


def test_of_racing_hosts_exactly_one_takes_a_free_lock(tmp_path: Path) -> None:
    winners = race(tmp_path)
    assert len(winners) == 1
    assert holder(tmp_path) == winners[0]
    assert os.listdir(tmp_path / "nfs/web") == ["disk0.img.lock"]  # no temporary left behind


def test_of_racing_hosts_exactly_one_breaks_a_stale_lock(tmp_path: Path) -> None:
    lock = tmp_path / LOCK
    lock.parent.mkdir(parents=True)
    lock.write_bytes(LockRecord("hv99", "web", interval=1.0).render())
    winners = race(tmp_path)
    assert len(winners) == 1
    assert holder(tmp_path) == winners[0]
    assert os.listdir(tmp_path / "nfs/web") == ["disk0.img.lock"]


def test_remove_if_puts_back_a_lock_it_should_not_have_moved(tmp_path: Path) -> None:
    path = tmp_path / "disk0.img.lock"
    lock = LockFile(path, "hv1")
    assert lock.remove_if(lambda _: True) == "absent"
    path.write_bytes(b"fresh record of hv2")
    assert lock.remove_if(lambda found: found == b"the stale record") == "kept"
    assert path.read_bytes() == b"fresh record of hv2"
    assert lock.remove_if(lambda found: found == b"fresh record of hv2") == "removed"
    assert not path.exists() and os.listdir(tmp_path) == []


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def keeper(root: Path, clock: Clock, *, take: bool = True) -> SharedLocks:
    return SharedLocks(
        host_path=lambda p: root / p.lstrip("/"), clock=clock, wall_clock=lambda: 1.7e9, take=take
    )


def shared(name: str = "web", state: str = "running") -> GuestSpec:
    return GuestSpec(
        name=name,
        disks=(Disk(path=f"/nfs/{name}/disk0.img"),),
        lifecycle=Lifecycle(shared_storage=True, state=state),  # type: ignore[arg-type]
    )


WEB = {"web": shared()}
LOCK = "nfs/web/disk0.img.lock"


def holder(root: Path) -> str | None:
    path = root / LOCK
    if not path.exists():
        return None
    record = parse_record(path.read_bytes())
    return record.host if record is not None else "(damaged)"


def test_a_free_lock_is_taken_and_the_other_host_waits(tmp_path: Path) -> None:
    clock = Clock()
    hv1, hv2 = keeper(tmp_path, clock), keeper(tmp_path, clock)
    desired, waiting = hv1.admit(WEB, frozenset(), me="hv1", interval=30.0)
    assert set(desired) == {"web"} and not waiting and holder(tmp_path) == "hv1"

    desired, waiting = hv2.admit(WEB, frozenset(), me="hv2", interval=30.0)
    assert set(desired) == set()
    assert waiting["web"].holder == "hv1"
    assert waiting["web"].why == "waiting for hv1 to release"
    assert hv2.next_check() == clock.now + 1.0


def test_the_holder_refreshes_so_its_lock_never_goes_stale(tmp_path: Path) -> None:
    clock = Clock()
    hv1, hv2 = keeper(tmp_path, clock), keeper(tmp_path, clock)
    hv1.admit(WEB, frozenset(), me="hv1", interval=30.0)
    for _ in range(3 * STALE_AFTER):
        before = (tmp_path / LOCK).read_bytes()
        clock.now += 30.0
        hv1.admit(WEB, frozenset(), me="hv1", interval=30.0)
        assert (tmp_path / LOCK).read_bytes() != before
        _, waiting = hv2.admit(WEB, frozenset(), me="hv2", interval=30.0)
        assert "web" in waiting
    assert holder(tmp_path) == "hv1"


def test_a_stale_lock_is_taken_over_and_its_old_holder_lets_go(tmp_path: Path) -> None:
    clock = Clock()
    hv1, hv2 = keeper(tmp_path, clock), keeper(tmp_path, clock)
    hv1.admit(WEB, frozenset(), me="hv1", interval=30.0)
    hv2.admit(WEB, frozenset(), me="hv2", interval=30.0)  # first sighting
    clock.now += STALE_AFTER * 30.0 - 1
    assert "web" in hv2.admit(WEB, frozenset(), me="hv2", interval=30.0)[1]
    clock.now += 1
    desired, waiting = hv2.admit(WEB, frozenset(), me="hv2", interval=30.0)
    assert set(desired) == {"web"} and not waiting and holder(tmp_path) == "hv2"
    # hv1 comes back (its daemon was stopped, its guest with it): it lost the lock.
    desired, waiting = hv1.admit(WEB, frozenset(), me="hv1", interval=30.0)
    assert "web" not in desired and waiting["web"].holder == "hv2"
    assert "web" not in hv1.held and holder(tmp_path) == "hv2"


def test_an_empty_lock_from_a_power_cut_goes_stale(tmp_path: Path) -> None:
    clock = Clock()
    (tmp_path / LOCK).parent.mkdir(parents=True)
    (tmp_path / LOCK).write_bytes(b"")
    hv1 = keeper(tmp_path, clock)
    _, waiting = hv1.admit(WEB, frozenset(), me="hv1", interval=30.0)
    assert waiting["web"].why.endswith("disk0.img.lock to go stale")
    clock.now += STALE_AFTER * 30.0
    assert hv1.check_waiting()  # between passes: it may be taken now
    desired, waiting = hv1.admit(WEB, frozenset(), me="hv1", interval=30.0)
    assert set(desired) == {"web"} and holder(tmp_path) == "hv1"


def test_a_lock_is_kept_while_its_guest_runs_and_released_once_it_stopped(
    tmp_path: Path,
) -> None:
    clock = Clock()
    hv1, hv2 = keeper(tmp_path, clock), keeper(tmp_path, clock)
    hv1.admit(WEB, frozenset(), me="hv1", interval=30.0)
    # Its file moved to hv2 (not here any more) while its boot still runs here.
    desired, _ = hv1.admit({}, frozenset({"web"}), me="hv1", interval=30.0)
    assert holder(tmp_path) == "hv1" and "web" in hv1.held
    assert "web" in hv2.admit(WEB, frozenset(), me="hv2", interval=30.0)[1]
    assert not hv2.check_waiting()
    # The boot ended: the next pass lets go, and the waiting host sees it at its next look.
    hv1.admit({}, frozenset(), me="hv1", interval=30.0)
    assert holder(tmp_path) is None and not hv1.held
    assert hv2.check_waiting()
    desired, _waiting = hv2.admit(WEB, frozenset(), me="hv2", interval=30.0)
    assert set(desired) == {"web"} and holder(tmp_path) == "hv2"


def test_a_stopped_guest_needs_no_lock_and_its_lock_is_released(tmp_path: Path) -> None:
    clock = Clock()
    hv1 = keeper(tmp_path, clock)
    hv1.admit(WEB, frozenset(), me="hv1", interval=30.0)
    stopped = {"web": shared(state="stopped")}
    desired, waiting = hv1.admit(stopped, frozenset(), me="hv1", interval=30.0)
    assert set(desired) == {"web"} and not waiting and holder(tmp_path) is None


def test_a_restarted_daemon_adopts_the_lock_naming_its_host(tmp_path: Path) -> None:
    clock = Clock()
    keeper(tmp_path, clock).admit(WEB, frozenset(), me="hv1", interval=30.0)
    again = keeper(tmp_path, clock)
    desired, _waiting = again.admit(WEB, frozenset(), me="hv1", interval=30.0)
    assert set(desired) == {"web"} and dict(again.held) == {"web": "/" + LOCK}


def test_looking_writes_nothing(tmp_path: Path) -> None:
    clock = Clock()
    look = keeper(tmp_path, clock, take=False)
    desired, waiting = look.admit(WEB, frozenset(), me="hv1", interval=30.0)
    assert set(desired) == {"web"} and not (tmp_path / "nfs").exists()
    keeper(tmp_path, clock).admit(WEB, frozenset(), me="hv2", interval=30.0)
    before = (tmp_path / LOCK).read_bytes()
    desired, waiting = look.admit(WEB, frozenset(), me="hv1", interval=30.0)
    assert not desired and waiting["web"].holder == "hv2"
    assert (tmp_path / LOCK).read_bytes() == before


def test_the_record_says_who_and_how_often(tmp_path: Path) -> None:
    keeper(tmp_path, Clock()).admit(WEB, frozenset(), me="hv1", interval=12.5)
    raw = json.loads((tmp_path / LOCK).read_text())
    assert {k: raw[k] for k in ("host", "guest", "interval", "at")} == {
        "host": "hv1",
        "guest": "web",
        "interval": 12.5,
        "at": 1.7e9,
    }
    assert parse_record((tmp_path / LOCK).read_bytes()) == LockRecord(
        "hv1", "web", 12.5, raw["count"], 1.7e9
    )
