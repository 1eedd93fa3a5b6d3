"""A watcher whose emitter thread died (kqueue's EMFILE, any unexpected OSError) says so: its
observer thread runs on, so only the emitter shows the watch is gone (reference §8.6)."""

from __future__ import annotations

import errno
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from structlog.testing import capture_logs
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingEmitter

from reconciler import watch
from reconciler.watch import ConfWatcher

WAIT = 5.0  # upper bound for a thread to end; never an expectation of speed


def wait_until(condition: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


EMFILE = OSError(errno.EMFILE, "Too many open files")


class DyingEmitter(PollingEmitter):
    """A polling emitter that raises once `fail` is set, as kqueue's does when it cannot open
    a descriptor for a new file."""

    fail = threading.Event()

    def queue_events(self, timeout: float) -> None:
        if DyingEmitter.fail.is_set():
            DyingEmitter.fail.clear()  # once: the next watcher works
            raise EMFILE
        super().queue_events(timeout)


@pytest.fixture
def dying(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    DyingEmitter.fail.clear()
    monkeypatch.setattr(
        watch,
        "make_observer",
        lambda backend, poll_interval: (BaseObserver(DyingEmitter, timeout=0.02), False),
    )
    return DyingEmitter.fail


def test_a_dead_emitter_makes_the_watcher_not_alive(tmp_path: Path, dying: threading.Event) -> None:
    with ConfWatcher(tmp_path, lambda names: None) as watcher, capture_logs() as logs:
        assert watcher.is_alive() and watcher.failure is None
        dying.set()
        assert wait_until(lambda: not watcher.is_alive())
        assert watcher.failure == "OSError: [Errno 24] Too many open files"
    died = [e for e in logs if e["event"] == "watch.emitter_died"]
    assert died == [
        {"event": "watch.emitter_died", "log_level": "error", "dir": str(tmp_path),
         "error": "OSError: [Errno 24] Too many open files"}
    ]  # fmt: skip


def test_a_healthy_watcher_stays_alive(tmp_path: Path, dying: threading.Event) -> None:
    seen = threading.Event()
    with ConfWatcher(tmp_path, lambda names: seen.set(), quiet=0.01) as watcher:
        (tmp_path / "a.toml").write_text("")
        assert seen.wait(WAIT)  # its emitter ran, saw the file, and runs on
        assert watcher.is_alive() and watcher.failure is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the native emitter is inotify")
def test_the_native_emitter_dying_is_noticed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from watchdog.observers.inotify import InotifyFullEmitter

    fail = threading.Event()
    original = InotifyFullEmitter.queue_events

    def queue_events(self: InotifyFullEmitter, timeout: float, **kw: object) -> None:
        if fail.is_set():
            raise EMFILE
        original(self, timeout, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(InotifyFullEmitter, "queue_events", queue_events)
    with ConfWatcher(tmp_path, lambda names: None) as watcher:
        assert watcher.is_alive()
        fail.set()
        (tmp_path / "wake.toml").write_text("")  # the emitter waits in read() until an event
        assert wait_until(lambda: not watcher.is_alive())
        assert watcher.failure is not None and "Too many open files" in watcher.failure


def test_the_kqueue_watch_wakes_rarely_when_idle(monkeypatch: pytest.MonkeyPatch) -> None:
    # FreeBSD's kqueue emitter re-reads the whole directory each time it wakes, and with
    # watchdog's default it wakes every second even when nothing changes (reference §8.6).
    import watchdog.observers

    made: list[float] = []

    class Observer(BaseObserver):
        def __init__(self, *, timeout: float = 1.0) -> None:
            made.append(timeout)
            super().__init__(PollingEmitter, timeout=timeout)

    monkeypatch.setattr(sys, "platform", "freebsd14")
    monkeypatch.setattr(watchdog.observers, "Observer", Observer)
    observer, close_events = watch.make_observer("native", 1.0)
    assert made == [watch.KQUEUE_WAKE] and observer.timeout == watch.KQUEUE_WAKE
    assert watch.KQUEUE_WAKE >= 5.0
    assert close_events is False


def test_stop_does_not_wait_for_an_emitter_blocked_in_the_kernel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # kqueue's emitter holds its lock for the whole kevent() wait (KQUEUE_WAKE when idle), and
    # stopping an observer waits for that lock: a daemon exit or a new watch must not.
    release = threading.Event()
    blocked = threading.Event()

    class BlockedEmitter(PollingEmitter):
        def queue_events(self, timeout: float) -> None:
            blocked.set()
            release.wait()

    monkeypatch.setattr(
        watch,
        "make_observer",
        lambda backend, poll_interval: (BaseObserver(BlockedEmitter, timeout=30.0), False),
    )
    watcher = ConfWatcher(tmp_path, lambda names: None)
    watcher.start()
    try:
        assert blocked.wait(WAIT)
        watcher.stop()
        assert not release.is_set()  # stop() returned while the emitter still waits
        assert not watcher.is_alive()
    finally:
        release.set()
