"""Turns file events in one directory into few, debounced "these files changed" notifications.

Owns the watchdog observer and the `Debouncer` (pure timing rules, driven by the caller's
clock); which names count is the core's `guestfile.is_spec_file_name`.
It must not read or parse the files it reports: the daemon re-reads specs by stat on every
pass, and the periodic resync covers any event this misses.

How the daemon loop consumes it: every wake-up source puts an item on one `queue.SimpleQueue`
(its `put` is safe from signal handlers, unlike `queue.Queue`), and the loop blocks on that
queue with a timeout equal to the time left until the next resync::

    wake: queue.SimpleQueue[Wake] = queue.SimpleQueue()
    watcher = ConfWatcher(cfg.conf_dir, lambda names: wake.put(ConfChanged(names)))
    watcher.start()                      # raises DaemonError when conf_dir cannot be watched
    signal.signal(signal.SIGHUP, lambda *_: wake.put(Reload()))
    try:
        while running:
            try:
                item = wake.get(timeout=max(0.0, next_resync - time.monotonic()))
            except queue.Empty:
                item = Resync()
            ...drain further queued items with get_nowait(), then run one pass...
            if not watcher.is_alive():   # conf_dir was removed or replaced
                ...recreate the watcher on the next resync...
    finally:
        watcher.stop()

`notify` runs on the watcher's own thread and must return quickly. A pending burst is dropped by
`stop()`; the caller is shutting down anyway.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import Literal

import structlog
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers.api import BaseObserver, EventEmitter
from watchdog.observers.polling import PollingObserver

from reconciler.errors import DaemonError
from reconciler.guestfile import is_spec_file_name

log = structlog.get_logger(__name__)

Backend = Literal["native", "polling"]
KQUEUE_WAKE = 10.0  # seconds an idle kqueue emitter waits before it re-reads the directory


class Debouncer:
    """Coalesces a burst of events into one signal: due `quiet` seconds after the last event,
    but never later than `max_wait` seconds after the first, so a steady trickle still gets
    through. Pure: every method takes the caller's clock value.
    """

    def __init__(self, quiet: float = 0.05, max_wait: float = 0.5) -> None:
        if quiet <= 0:
            raise ValueError(f"quiet must be positive, got {quiet}")
        if max_wait < quiet:
            raise ValueError(f"max_wait ({max_wait}) must not be shorter than quiet ({quiet})")
        self.quiet = quiet
        self.max_wait = max_wait
        self._first: float | None = None
        self._last = 0.0

    @property
    def pending(self) -> bool:
        return self._first is not None

    def event(self, now: float) -> None:
        if self._first is None:
            self._first = now
        self._last = now

    def deadline(self) -> float | None:
        """When the pending burst becomes due; None when nothing is pending."""
        if self._first is None:
            return None
        return min(self._last + self.quiet, self._first + self.max_wait)

    def due(self, now: float) -> bool:
        deadline = self.deadline()
        return deadline is not None and now >= deadline

    def take(self, now: float) -> bool:
        """True once per burst, when it is due; the next event then starts a new burst."""
        if not self.due(now):
            return False
        self._first = None
        return True


def _identity(directory: Path) -> tuple[int, int] | None:
    try:
        st = directory.stat()
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _path_text(path: bytes | str) -> str:
    return os.fsdecode(path)


def settled_paths(event: FileSystemEvent, *, close_events: bool) -> tuple[str, ...]:
    """The file paths an event shows as finished changing: written and closed, renamed (both
    names), deleted, or attributes changed. With a backend that reports closes (inotify), a create
    or modify means a writer is still busy, so it waits for the close; a symlink is created whole.
    Without closes (kqueue, polling) the debouncer's quiet period is the only guard.
    """
    if event.is_directory:
        return ()
    src = _path_text(event.src_path)
    kind = event.event_type
    if kind == "moved":
        return tuple(p for p in (src, _path_text(event.dest_path)) if p)
    if kind in ("closed", "deleted", "attrib"):
        return (src,)
    if kind == "created":
        if close_events and not os.path.islink(src):
            return ()
        return (src,)
    if kind == "modified":
        return () if close_events else (src,)
    return ()


def make_observer(backend: Backend, poll_interval: float) -> tuple[BaseObserver, bool]:
    """The observer for `backend` and whether it reports close-after-write (public: tests
    stand in an observer of their own here)."""
    if backend == "polling":
        return PollingObserver(timeout=poll_interval), False
    if sys.platform.startswith("linux"):
        from watchdog.observers.inotify import InotifyObserver

        # Full events report a file renamed in from outside the directory as a move, not as a
        # create, which under inotify would otherwise look like a writer that has not finished.
        return InotifyObserver(generate_full_events=True), True
    from watchdog.observers import Observer

    # kqueue, on every FreeBSD release (reference §8.6): its emitter re-reads the watched
    # directory each time kevent() returns, an event or its timeout (watchdog's default: every
    # second, a stat per file even on an idle host). A change still wakes it at once; the
    # timeout only bounds how long the emitter thread takes to end after stop().
    return Observer(timeout=KQUEUE_WAKE), False


def _stop_observer(observer: BaseObserver) -> None:
    observer.stop()
    if observer.is_alive():
        observer.join()


class _Handler(FileSystemEventHandler):
    def __init__(self, on_event: Callable[[FileSystemEvent], None]) -> None:
        self._on_event = on_event

    def on_any_event(self, event: FileSystemEvent) -> None:
        self._on_event(event)


class ConfWatcher:
    """Watches `directory` and calls `notify(names)` with the debounced set of changed names
    (paths relative to `directory`, as `accept` saw them).

    `accept` decides which names count (default: `is_spec_file_name`); `recursive` also watches
    subdirectories, for a tree such as `run_dir/guests/NAME/exit` with a matching `accept`.
    """

    def __init__(
        self,
        directory: Path,
        notify: Callable[[frozenset[str]], None],
        *,
        accept: Callable[[str], bool] = is_spec_file_name,
        recursive: bool = False,
        quiet: float = 0.05,
        max_wait: float = 0.5,
        backend: Backend = "native",
        poll_interval: float = 1.0,
    ) -> None:
        self.directory = Path(directory)
        self._root = self.directory
        self._identity: tuple[int, int] | None = None
        self._notify = notify
        self._accept = accept
        self._recursive = recursive
        self._backend = backend
        self._poll_interval = poll_interval
        self._debouncer = Debouncer(quiet, max_wait)
        self._names: set[str] = set()
        self._cond = threading.Condition()
        self._stopping = False
        self._gone = False
        self._observer: BaseObserver | None = None
        self._close_events = False
        self._thread: threading.Thread | None = None
        self._failure: str | None = None

    def start(self) -> None:
        if self._observer is not None:
            raise RuntimeError("ConfWatcher.start() called twice")
        if not self.directory.is_dir():
            raise DaemonError(f"{self.directory}: not a directory, cannot watch it")
        # Paths from the observer are absolute under the resolved directory.
        self._root = self.directory.resolve()
        self._identity = _identity(self.directory)
        observer, self._close_events = make_observer(self._backend, self._poll_interval)
        try:
            observer.schedule(_Handler(self._on_event), str(self._root), recursive=self._recursive)
            for emitter in observer.emitters:
                self._guard(emitter)
            observer.start()
        except OSError as exc:
            # inotify watch limits (ENOSPC) and permissions land here.
            raise DaemonError(f"{self.directory}: cannot watch: {exc}") from exc
        self._observer = observer
        self._thread = threading.Thread(
            target=self._deliver_loop, name=f"watch:{self.directory}", daemon=True
        )
        self._thread.start()
        log.debug(
            "watch.started",
            dir=str(self.directory),
            observer=type(observer).__name__,
            close_events=self._close_events,
        )

    def stop(self) -> None:
        """Stops watching; idempotent. Returns once no further `notify` call can start.

        The observer is stopped on a thread of its own: kqueue's emitter holds its lock for
        the whole kevent() wait (up to KQUEUE_WAKE when idle) and stopping it waits for that
        lock, which neither a daemon's exit nor a new watch of the same path should."""
        with self._cond:
            already = self._stopping
            self._stopping = True
            self._cond.notify_all()
        observer = self._observer
        if observer is not None and not already:
            threading.Thread(
                target=_stop_observer, args=(observer,), name="watch-stop", daemon=True
            ).start()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()

    def is_alive(self) -> bool:
        """False once stopped, once the watched directory was removed, renamed or replaced
        (a fresh checkout swapped in), or once its emitter thread died (`failure` says why):
        the caller then starts a new watcher on the path.
        """
        observer = self._observer
        if observer is None or self._thread is None:
            return False
        with self._cond:
            if self._gone or self._stopping or self._failure is not None:
                return False
        if _identity(self.directory) != self._identity:
            return False
        # The observer's thread only dispatches: the emitters read the kernel, and one that
        # raised is gone while the observer runs on.
        emitters = observer.emitters
        return (
            bool(emitters)
            and all(e.is_alive() for e in emitters)
            and observer.is_alive()
            and self._thread.is_alive()
        )

    @property
    def failure(self) -> str | None:
        """Why the emitter thread died, once it did: the error it raised."""
        with self._cond:
            return self._failure

    def _guard(self, emitter: EventEmitter) -> None:
        """Catch what ends an emitter's thread (kqueue's EMFILE when it cannot open a
        descriptor for a new file, any unexpected OSError): note it, log it, and end the
        thread quietly; `is_alive()` then says False."""
        read = emitter.queue_events

        def queue_events(timeout: float) -> None:
            try:
                read(timeout)
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                with self._cond:
                    self._failure = error
                log.error("watch.emitter_died", dir=str(self.directory), error=error)
                emitter.stop()

        setattr(emitter, "queue_events", queue_events)  # noqa: B010 (an instance's method)

    def __enter__(self) -> ConfWatcher:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _on_event(self, event: FileSystemEvent) -> None:
        if (
            event.is_directory
            and event.event_type in ("deleted", "moved")
            and Path(_path_text(event.src_path)) == self._root
        ):
            with self._cond:
                self._gone = True
            log.warning("watch.dir_gone", dir=str(self.directory))
            return
        names = {
            name
            for path in settled_paths(event, close_events=self._close_events)
            if (name := self._relative(path)) is not None and self._accept(name)
        }
        if not names:
            return
        with self._cond:
            self._names.update(names)
            self._debouncer.event(time.monotonic())
            self._cond.notify_all()

    def _relative(self, path: str) -> str | None:
        try:
            relative = PurePosixPath(path).relative_to(PurePosixPath(self._root))
        except ValueError:
            return None
        name = relative.as_posix()
        if name == "." or (not self._recursive and len(relative.parts) != 1):
            return None
        return name

    def _deliver_loop(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._stopping:
                        return
                    now = time.monotonic()
                    if self._debouncer.take(now):
                        names = frozenset(self._names)
                        self._names.clear()
                        break
                    deadline = self._debouncer.deadline()
                    self._cond.wait(None if deadline is None else deadline - now)
            log.debug("watch.changed", dir=str(self.directory), files=sorted(names))
            try:
                self._notify(names)
            except Exception:
                # A failing consumer must not end the watch; the next burst tries again.
                log.exception("watch.notify_failed", dir=str(self.directory))
