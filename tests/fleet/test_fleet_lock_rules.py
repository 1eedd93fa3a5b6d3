"""The shared-storage lock's rules (sharedlock.py): where it lives, what it says, whose it is."""

from __future__ import annotations

from reconciler.sharedlock import (
    STALE_AFTER,
    LockRecord,
    Sighting,
    judge,
    lock_path,
    parse_record,
    seen_again,
)
from reconciler.spec import Disk, GuestSpec, Lifecycle

HV2 = LockRecord("hv2", "web", interval=30.0, count=7, at=1.5e9).render()


def test_the_lock_lives_beside_the_first_disk_of_a_shared_guest() -> None:
    disks = (Disk(path="/nfs/web/disk0.img"), Disk(path="/local/web/scratch.img"))
    shared = GuestSpec(name="web", disks=disks, lifecycle=Lifecycle(shared_storage=True))
    assert lock_path(shared) == "/nfs/web/disk0.img.lock"
    assert lock_path(GuestSpec(name="web", disks=disks)) is None


def test_a_record_reads_back_and_damage_is_no_record() -> None:
    assert parse_record(HV2) == LockRecord("hv2", "web", 30.0, 7, 1.5e9)
    for damaged in (
        b"",
        b"\0\0\0",
        b"hv1\n",
        b'{"host": "", "guest": "w", "interval": 30}',
        b'{"host": "hv1", "guest": "w", "interval": true}',
        b"[" * 100_000,
    ):
        assert parse_record(damaged) is None


def test_whose_lock() -> None:
    seen = Sighting(HV2, since=100.0)
    assert judge(Sighting(None, 100.0), "hv1", 100.0, 30.0).verdict == "free"
    assert judge(seen, "hv2", 100.0, 30.0).verdict == "ours"
    held = judge(seen, "hv1", 100.0, 30.0)
    assert (held.verdict, held.holder) == ("held", "hv2")
    assert held.why_waiting("/nfs/web/disk0.img.lock") == "waiting for hv2 to release"


def test_a_lock_is_stale_after_its_content_stood_still_for_the_stale_period() -> None:
    period = STALE_AFTER * 30.0
    seen = Sighting(HV2, since=100.0)
    assert judge(seen, "hv1", 100.0 + period - 0.001, 30.0).verdict == "held"
    assert judge(seen, "hv1", 100.0 + period, 30.0).verdict == "stale"
    # The longer of the two intervals counts: a holder refreshing every 10 min is not stale
    # after 2 min, whatever this host's own interval.
    slow = LockRecord("hv2", "web", interval=600.0).render()
    assert judge(Sighting(slow, 0.0), "hv1", period, 30.0).verdict == "held"
    # Our own lock is never stale to us: a restarted daemon keeps what it held.
    assert judge(Sighting(HV2, 0.0), "hv2", 1e9, 30.0).verdict == "ours"


def test_a_change_restarts_the_clock_and_an_unchanged_file_keeps_it() -> None:
    first = seen_again(None, HV2, 10.0)
    assert seen_again(first, HV2, 50.0) is first
    refreshed = LockRecord("hv2", "web", interval=30.0, count=8).render()
    assert seen_again(first, refreshed, 50.0) == Sighting(refreshed, 50.0)


def test_an_empty_lock_blocks_for_the_stale_period_then_goes() -> None:
    # vm-bhyve PR #555: an empty lock after a power cut must not block a guest forever.
    empty = Sighting(b"", since=0.0)
    waiting = judge(empty, "hv1", 1.0, 30.0)
    assert (waiting.verdict, waiting.holder) == ("held", None)
    assert (
        waiting.why_waiting("/nfs/x.lock") == "waiting for the damaged lock /nfs/x.lock to go stale"
    )
    assert judge(empty, "hv1", STALE_AFTER * 30.0, 30.0).verdict == "stale"
