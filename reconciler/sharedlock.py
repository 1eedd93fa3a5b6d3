"""The shared-storage lock's rules: where it lives, what it records, and whose it is.

Pure: a guest with `shared_storage = true` has a lock file beside its first disk
(`/vm/web/disk0.img` -> `/vm/web/disk0.img.lock`) naming the host that may boot it. This module
says what the file holds and judges one look at it; `host/locks.py` reads and writes it.

    verdict   the lock file                                  this host may boot the guest
    free      absent                                         yes, once it has created it
    ours      names this host                                yes (it refreshes it every pass)
    held      names another host, and changed lately          no: "waiting for hv1 to release"
    stale     unchanged for STALE_AFTER refresh intervals    yes, once it has replaced it

Staleness is judged on the looking host's own monotonic clock: the holder rewrites the file on
every pass (at least every `resync_interval`, which the record carries), and a record that has
not changed for `STALE_AFTER` times the longer of the holder's and the looker's interval is
stale. No two clocks are compared, so skew between hosts cannot make a live lock look stale.
An empty or damaged file (a power cut between a create and its data reaching the disk left
vm-bhyve users with empty `run.lock` files that blocked their guests for good: PR
churchers/vm-bhyve#555) is a lock of an unknown holder, and goes stale the same way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

from reconciler.spec import GuestSpec

LOCK_SUFFIX = ".lock"
STALE_AFTER = 4  # refresh intervals without a change: 2 minutes at the default 30 s
MAX_LOCK_BYTES = 4096

Verdict = Literal["free", "ours", "held", "stale"]


def lock_path(spec: GuestSpec) -> str | None:
    """The host path of the guest's lock, or None when it has none. Validation makes the
    first disk of a shared guest an image file (guestrules.shared_storage)."""
    if not spec.lifecycle.shared_storage or not spec.disks:
        return None
    first = spec.disks[0].path
    return None if first is None else first + LOCK_SUFFIX


@dataclass(frozen=True)
class LockRecord:
    """What a lock file says: who holds it, how often it refreshes it, and a count that
    changes with every refresh. `at` (the holder's wall clock) is for people only."""

    host: str
    guest: str
    interval: float
    count: int = 0
    at: float = 0.0

    def render(self) -> bytes:
        fields = {"host": self.host, "guest": self.guest, "interval": self.interval}
        fields |= {"count": self.count, "at": round(self.at, 3)}
        return (json.dumps(fields) + "\n").encode()


def parse_record(data: bytes) -> LockRecord | None:
    """The record in a lock file's bytes; None when it is empty or damaged."""
    try:
        raw = json.loads(data.decode("utf-8"))
        host, guest, interval = raw["host"], raw["guest"], raw["interval"]
        count, at = raw.get("count", 0), raw.get("at", 0.0)
    except (UnicodeDecodeError, ValueError, TypeError, KeyError, RecursionError):
        return None
    if not (isinstance(host, str) and host and isinstance(guest, str)):
        return None
    numbers = (interval, count, at)
    if not all(isinstance(n, int | float) and not isinstance(n, bool) for n in numbers):
        return None
    if not 0 < interval < 1e9:
        return None
    return LockRecord(host.lower(), guest, float(interval), int(count), float(at))


@dataclass(frozen=True)
class Sighting:
    """The content of a lock file as this host saw it, and since when (its monotonic clock)
    it has not changed. `content` None: there was no file."""

    content: bytes | None
    since: float


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    holder: str | None = None  # the host the record names, when it names one

    def why_waiting(self, path: str) -> str:
        if self.holder is not None:
            return f"waiting for {self.holder} to release"
        return f"waiting for the damaged lock {path} to go stale"


@dataclass(frozen=True)
class Waiting:
    """A guest placed here that may not boot yet, and why (for status and the log)."""

    holder: str | None
    why: str


def seen_again(last: Sighting | None, content: bytes | None, now: float) -> Sighting:
    """The sighting after looking again at `now`: the same one while the content stands."""
    if last is not None and last.content == content:
        return last
    return Sighting(content, now)


def judge(sighting: Sighting, me: str, now: float, my_interval: float) -> Judgement:
    """Whose the lock is, for host `me` (lower-case) looking at `now`."""
    if sighting.content is None:
        return Judgement("free")
    record = parse_record(sighting.content)
    holder = record.host if record is not None else None
    if holder == me:
        return Judgement("ours", holder)
    interval = max(my_interval, record.interval if record is not None else my_interval)
    if now - sighting.since >= STALE_AFTER * interval:
        return Judgement("stale", holder)
    return Judgement("held", holder)
