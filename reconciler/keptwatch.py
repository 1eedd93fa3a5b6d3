"""The daemon's watch of conf_dir, kept alive: a `ConfWatcher` made again whenever the one
before died (the directory removed, renamed or swapped; the emitter thread dead).

Edge code over `watch.ConfWatcher`; it reads no file and decides nothing but when to watch
anew and when a pass must re-read the directory because events may have been missed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import structlog

from reconciler.errors import DaemonError
from reconciler.watch import ConfWatcher

log = structlog.get_logger("reconciler.watch")


class KeptWatcher:
    """A `ConfWatcher` on a directory that may be removed, renamed or swapped (a symlink to a
    new checkout), or whose watch may die (kqueue's EMFILE, any OSError in its emitter).
    `keep()`, at every wake-up, watches anew whenever the current watcher died; a lost watch is
    said loudly (the log, and `notes` for status) and asks for a pass, which re-reads the
    directory as the resync would; while no watch can be made, every wake-up asks for one."""

    def __init__(
        self,
        directory: Path,
        notify: Callable[[frozenset[str]], None],
        *,
        quiet: float,
        max_wait: float,
    ) -> None:
        self.directory = directory
        self._notify = notify
        self._quiet = quiet
        self._max_wait = max_wait
        self._watcher: ConfWatcher | None = None
        self._note: str | None = None

    @property
    def watching(self) -> bool:
        return self._watcher is not None and self._watcher.is_alive()

    @property
    def notes(self) -> tuple[str, ...]:
        """A status line while file events may have been missed."""
        return (self._note,) if self._note else ()

    def keep(self) -> bool:
        """Watch anew if the watch died; True when a pass should re-read the directory."""
        watcher = self._watcher
        if watcher is not None and watcher.is_alive():
            return False
        where = str(self.directory)
        lost = None
        replaced = watcher is not None or self._note is not None
        if watcher is not None:
            lost = watcher.failure
            watcher.stop()
            self._watcher = None
            if lost is not None:
                log.error("watch.lost", dir=where, error=lost)
        watcher = ConfWatcher(
            self.directory, self._notify, quiet=self._quiet, max_wait=self._max_wait
        )
        try:
            watcher.start()
        except DaemonError as exc:
            note = f"watch: {where}: not watched ({exc}); re-read at every wake-up"
            retry = lost is not None or self._note is not None
            if note != self._note:
                log.error("watch.failed", dir=where, error=str(exc))
            self._note = note
            return retry
        self._watcher = watcher
        log.info("watch.restarted" if replaced else "watch.started", dir=where)
        self._note = f"watch: {where}: file events lost ({lost}); watching again" if lost else None
        return lost is not None

    def settle(self) -> None:
        """The watch has lasted a resync interval: the note of a lost one has been seen."""
        if self.watching:
            self._note = None

    def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()
