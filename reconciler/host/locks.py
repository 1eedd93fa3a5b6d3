"""Shared-storage locks on disk: take, refresh, release and break them without a race.

Edge code: the only writer of lock files (`sharedlock.py` says what they hold and whose they
are). `LockFile` is one lock's file operations; `SharedLocks` is the daemon's keeper, asked once
per pass which shared guests this host may run (`admit`), and between passes whether a lock it
waits for came free (`check_waiting`).

How each operation stays atomic on a file system two hosts share (NFSv3/v4, or one local file
system seen through two mounts):

- take a free lock: the record is written and fsynced in a temporary file of this host's own,
  then `link(2)`ed to the lock's name. link fails with EEXIST when the name exists, so of two
  hosts creating the lock at once exactly one succeeds, and the lock is never seen empty or
  half-written. Over NFS a LINK whose reply was lost is retransmitted and may then report
  EEXIST although it succeeded; the temporary file's link count (2) tells (the technique Linux
  open(2) gives under O_EXCL for lock files on NFS).
- refresh: a new record through a temporary file and `rename(2)` over the lock, once the lock
  was read and found to name this host.
- break a stale lock, or release: the lock is renamed aside to a name of this host's own (of
  two hosts renaming one file, one gets ENOENT), then read: if it is the record that was judged
  stale (or, to release, names this host) it is deleted; otherwise a fresher lock was moved by
  mistake and is linked back. Only the host that deleted the stale record creates the next
  lock; one that found it gone or changed looks again at its next pass.

What this guarantees: two hosts never both take a free lock, never both break one stale lock,
and a host never deletes a lock that names another host unless it saw that exact record
unchanged for the stale period. What it does not:
- A holder that stops refreshing for the stale period while its guest still runs (its daemon
  down for minutes while the host stays up, or the host cut off from the storage) loses the
  lock, and another host boots a second copy: this is a lease without fencing.
- A refresh or a release reads, then renames: a host breaking the lock in between (possible
  only after the stale period) is overwritten.
- While a breaker holds a fresh lock aside by mistake (between its rename and its link back), a
  third host looking just then sees no lock and may take it; the host whose lock it was finds
  another record at its next pass and stops its guest, so two copies run until then.
- NFS clients cache attributes and names for up to a minute (FreeBSD mount_nfs(8) acregmax,
  nametimeo): the stale period must stay longer than that.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Literal

import structlog

from reconciler.sharedlock import (
    MAX_LOCK_BYTES,
    Judgement,
    LockRecord,
    Sighting,
    Waiting,
    judge,
    lock_path,
    parse_record,
    seen_again,
)
from reconciler.spec import GuestSpec

log = structlog.get_logger("reconciler.locks")

LOCK_POLL = 1.0  # seconds between looks at the locks guests wait for
Removal = Literal["removed", "absent", "kept"]
_serial = itertools.count()


class LockFile:
    """One lock file's operations; `tag` makes this host's temporary names its own."""

    def __init__(self, path: Path, tag: str) -> None:
        self.path = path
        self._tag = tag

    def read(self) -> bytes | None:
        """The lock's bytes, None when there is none; raises OSError."""
        try:
            with open(self.path, "rb") as f:
                return f.read(MAX_LOCK_BYTES + 1)
        except FileNotFoundError:
            return None

    def create(self, data: bytes) -> bool:
        """Take the lock if no file holds its name: True when this call created it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._write_temp(data)
        try:
            os.link(tmp, self.path)
            linked = True
        except FileExistsError:
            linked = os.stat(tmp).st_nlink == 2
        finally:
            tmp.unlink(missing_ok=True)
        self._sync_directory()
        return linked

    def replace(self, data: bytes) -> None:
        """Rewrite the lock in one rename (the caller has read it and found it its own)."""
        tmp = self._write_temp(data)
        try:
            os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self._sync_directory()

    def remove_if(self, wanted: Callable[[bytes], bool]) -> Removal:
        """Delete the lock if `wanted` says its content is the one to delete."""
        aside = self._temp_name()
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return "absent"
        try:
            with open(aside, "rb") as f:
                data = f.read(MAX_LOCK_BYTES + 1)
            if wanted(data):
                return "removed"
            # A fresher lock, moved by mistake: put it back, unless a new lock took the name
            # meanwhile (its holder's is then the one that counts).
            with contextlib.suppress(FileExistsError):
                os.link(aside, self.path)
            return "kept"
        finally:
            aside.unlink(missing_ok=True)
            self._sync_directory()

    def _temp_name(self) -> Path:
        return self.path.with_name(f".{self.path.name}.{self._tag}.{next(_serial)}")

    def _write_temp(self, data: bytes) -> Path:
        tmp = self._temp_name()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            # On disk before it carries the lock's name: a power cut must not leave an empty
            # lock behind (churchers/vm-bhyve#555).
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        os.close(fd)
        return tmp

    def _sync_directory(self) -> None:
        try:
            fd = os.open(self.path.parent, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(fd)
        except OSError:
            pass  # some file systems cannot sync a directory; the rename itself is atomic
        finally:
            os.close(fd)


class SharedLocks:
    """The locks of one host's shared-storage guests. With `take`, a pass takes free and
    stale locks, refreshes its own and releases those no guest needs; without it (`plan`,
    `apply`), it only looks."""

    def __init__(
        self,
        *,
        host_path: Callable[[str], Path],
        clock: Callable[[], float],
        wall_clock: Callable[[], float],
        take: bool,
    ) -> None:
        self._host_path = host_path
        self._clock = clock
        self._wall_clock = wall_clock
        self.take = take
        self._me = ""
        self._interval = 30.0
        self._tag = f"{os.getpid()}"
        self._seen: dict[str, Sighting] = {}
        self._held: dict[str, str] = {}  # guest -> the lock path this host holds for it
        self._waiting: dict[str, str] = {}  # guest -> the lock path it waits for
        self._count = 0
        self._next_check: float | None = None
        self._here: Mapping[str, GuestSpec] | None = None
        self._shared: dict[str, str] = {}  # guest -> lock path, of `_here`'s shared guests

    @property
    def held(self) -> Mapping[str, str]:
        return MappingProxyType(self._held)

    def admit(
        self,
        here: Mapping[str, GuestSpec],
        keep: frozenset[str],
        *,
        me: str,
        interval: float,
    ) -> tuple[Mapping[str, GuestSpec], Mapping[str, Waiting]]:
        """This pass's guests for host `me`: `here` less those whose lock another host holds
        (-> why they wait). A guest in `keep` has a live boot here: its lock is kept (and
        refreshed) whatever its file says, and released only once it stopped."""
        self._me, self._interval = me, interval
        self._tag = f"{me}.{os.getpid()}"
        if here is not self._here:
            # Looked for once per new set of specs: a pass with no shared guest costs nothing.
            self._here = here
            self._shared = {n: p for n, g in here.items() if (p := lock_path(g)) is not None}
        if not self._shared and not self._held and not self._waiting:
            return here, MappingProxyType({})
        wanted = {
            name: path
            for name, path in self._shared.items()
            if here[name].lifecycle.state == "running" or name in keep
        }
        wanted |= {n: p for n, p in self._held.items() if n in keep and n not in wanted}
        waiting: dict[str, Waiting] = {}
        for name, path in sorted(wanted.items()):
            why = self._settle(name, path)
            if why is not None and name in here:
                waiting[name] = why
        if self.take:
            for name in sorted(set(self._held) - set(wanted)):
                self.release(name)
        self._waiting = {n: wanted[n] for n in waiting}
        self._next_check = self._clock() + LOCK_POLL if waiting else None
        if not waiting:
            return here, MappingProxyType({})
        admitted = {n: g for n, g in here.items() if n not in waiting}
        return MappingProxyType(admitted), MappingProxyType(waiting)

    def release(self, name: str) -> None:
        """Give up the lock held for `name` (its guest stopped here, or left)."""
        path = self._held.get(name)
        if path is None:
            return
        lock = LockFile(self._host_path(path), self._tag)
        try:
            removal = lock.remove_if(self._names_me)
        except OSError as exc:
            log.error("lock.release_failed", guest=name, lock=path, error=exc.strerror)
            return  # still held: the next pass tries again
        del self._held[name]
        self._seen.pop(path, None)
        log.info("lock.released", guest=name, lock=path, found=removal)

    def refresh_held(self) -> None:
        """Rewrite every lock this host holds, between passes (while the daemon stops)."""
        for name, path in sorted(self._held.items()):
            self._settle(name, path)

    def release_all(self) -> None:
        for name in sorted(self._held):
            self.release(name)

    def next_check(self) -> float | None:
        """When to look again at the locks guests wait for (None: none waits)."""
        return self._next_check

    def check_waiting(self) -> bool:
        """Between passes: True when a lock a guest waits for is free or stale now, so a pass
        can take it at once."""
        now = self._clock()
        self._next_check = now + LOCK_POLL if self._waiting else None
        for path in self._waiting.values():
            try:
                content = LockFile(self._host_path(path), self._tag).read()
            except OSError:
                continue
            self._seen[path] = sighting = seen_again(self._seen.get(path), content, now)
            if judge(sighting, self._me, now, self._interval).verdict != "held":
                return True
        return False

    # -- one lock ------------------------------------------------------------------------------

    def _settle(self, name: str, path: str) -> Waiting | None:
        """Take, keep or give up the lock for `name`: None when this host may run it."""
        lock = LockFile(self._host_path(path), self._tag)
        now = self._clock()
        try:
            content = lock.read()
        except OSError as exc:
            if name in self._held:
                log.warning("lock.unreadable", guest=name, lock=path, error=exc.strerror)
                return None  # an unreadable lock stops no guest that holds it
            return Waiting(None, f"cannot read the lock {path}: {exc.strerror}")
        self._seen[path] = sighting = seen_again(self._seen.get(path), content, now)
        judged = judge(sighting, self._me, now, self._interval)
        if not self.take:
            return (
                None
                if judged.verdict != "held"
                else Waiting(judged.holder, judged.why_waiting(path))
            )
        try:
            taken = self._take(name, path, lock, judged, sighting)
        except OSError as exc:
            log.error("lock.write_failed", guest=name, lock=path, error=exc.strerror)
            if name in self._held:
                return None
            return Waiting(judged.holder, f"cannot write the lock {path}: {exc.strerror}")
        if taken:
            return None
        if self._held.pop(name, None) is not None:
            log.error("lock.lost", guest=name, lock=path, holder=judged.holder)
        return Waiting(judged.holder, judged.why_waiting(path))

    def _take(
        self, name: str, path: str, lock: LockFile, judged: Judgement, sighting: Sighting
    ) -> bool:
        mine = name in self._held
        verdict = judged.verdict
        if verdict == "held":
            return False
        data = self._record(name)
        if verdict == "ours":
            lock.replace(data)
        elif verdict == "free":
            # A lock of ours that vanished is taken again the same way: if another host broke
            # it and takes it first, that host's link wins and this one fails.
            if not lock.create(data):
                return False
        else:
            # Only the host that removed the very record it judged stale may create the next
            # one; a host that found the lock gone or changed looks again at the next pass.
            removal = lock.remove_if(lambda found: found == sighting.content)
            if removal != "removed" or not lock.create(data):
                return False
            log.warning("lock.taken_over", guest=name, lock=path, from_host=judged.holder)
        self._seen[path] = Sighting(data, self._clock())
        if not mine:
            event = "lock.adopted" if verdict == "ours" else "lock.acquired"
            log.info(event, guest=name, lock=path)
        self._held[name] = path
        return True

    def _record(self, name: str) -> bytes:
        self._count += 1
        record = LockRecord(self._me, name, self._interval, self._count, self._wall_clock())
        return record.render()

    def _names_me(self, data: bytes) -> bool:
        record = parse_record(data)
        return record is not None and record.host == self._me
