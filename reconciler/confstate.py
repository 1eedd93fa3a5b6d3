"""conf.d as the daemon follows it: the accepted specs, scanned, persisted ahead of acting.

Edge wiring of `specdir.ConfDir` (what the files say, seeded with what was accepted before)
and `host/files.AcceptedStore` (what was accepted, in state_dir): each scan logs what is broken
once, keeps each guest's file error for its status row, and writes what changed before the
daemon acts on it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import structlog

from reconciler.conflicts import Claims
from reconciler.host.files import AcceptedStore, load_accepted
from reconciler.spec import GuestSpec
from reconciler.specchanges import spec_events
from reconciler.specdir import ConfDir, ConfSnapshot
from reconciler.status import file_errors

log = structlog.get_logger("reconciler.daemon")


class ConfState:
    def __init__(self, conf_dir: Path, state_dir: Path, *, root: Path) -> None:
        accepted = load_accepted(state_dir)  # a damaged entry: StateError, one line
        self._store = AcceptedStore(state_dir, accepted)
        self.confdir = ConfDir(conf_dir, root=root, accepted=accepted)
        self.snapshot: ConfSnapshot | None = None
        self.file_errors: Mapping[str, str] = {}  # guest -> why its file is not followed

    def scan(
        self, claims: Claims, gone: Callable[[str], bool]
    ) -> tuple[Mapping[str, GuestSpec], list[str]]:
        """Every accepted guest, and the errors of persisting them (retried next time).
        `gone(name)`: nothing of a guest whose file is absent is left running."""
        self.confdir.claims = claims
        previous, self.snapshot = self.snapshot, self.confdir.scan()
        snapshot = self.snapshot
        if snapshot is not previous:
            for event, fields in spec_events(previous, snapshot):
                log.info(event, **fields)
            for p in snapshot.errors:
                log.warning("spec.invalid", file=p.file, key=p.key, error=p.message)
            self.file_errors = file_errors(snapshot)
        return snapshot.guests, self._store.keep(snapshot.guests, gone)

    def files(self) -> list[str]:
        """Each conf.d file's state (valid, invalid, conflict, refused), for metrics."""
        return [f.status for f in self.snapshot.files.values()] if self.snapshot else []
