"""Process exits learnt from the kernel: kqueue `EVFILT_PROC`/`NOTE_EXIT` on FreeBSD, a pidfd
polled with epoll on Linux (the simulated host's platform). Neither needs the process to be a
child, so a guest adopted by a restarted daemon is watched like one it started.

Edge code behind one small seam: `watch(pid, token)` registers a process, and `notify(token)`
is called on the watcher's own thread (it must return quickly) once that process has exited.
It holds no descriptor per process on FreeBSD and one pidfd per process on Linux; it never
polls, never reads /proc, and decides nothing.
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
import threading
from collections.abc import Callable
from typing import Protocol


class ExitWatcher(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...

    def watch(self, pid: int, token: str) -> bool:
        """Call `notify(token)` once `pid` exits; False when it is already gone."""
        ...

    def is_alive(self) -> bool: ...


class _Base:
    """The thread, the stop pipe and the pid -> token table both backends share."""

    def __init__(self, notify: Callable[[str], None]) -> None:
        self._notify = notify
        self._lock = threading.Lock()
        self._tokens: dict[int, str] = {}
        self._thread: threading.Thread | None = None
        self._stop_r, self._stop_w = os.pipe()
        self._stopping = False

    @property
    def watched(self) -> int:
        with self._lock:
            return len(self._tokens)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="procwatch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping = True
        os.write(self._stop_w, b"x")
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._close()
        os.close(self._stop_r)
        os.close(self._stop_w)

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stopping

    def _exited(self, pid: int) -> None:
        with self._lock:
            token = self._tokens.pop(pid, None)
        if token is not None:
            self._notify(token)

    def _run(self) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        raise NotImplementedError


if sys.platform == "linux":

    class PidfdWatcher(_Base):
        """Linux: one pidfd per process, all in one epoll set; a pidfd reads ready once its
        process has exited (pidfd_open(2))."""

        def __init__(self, notify: Callable[[str], None]) -> None:
            super().__init__(notify)
            self._epoll = select.epoll()
            self._epoll.register(self._stop_r, select.EPOLLIN)
            self._fds: dict[int, int] = {}  # pidfd -> pid

        def watch(self, pid: int, token: str) -> bool:
            try:
                fd = os.pidfd_open(pid)
            except ProcessLookupError:
                return False
            with self._lock:
                old = next((f for f, p in self._fds.items() if p == pid), None)
                if old is not None:
                    self._drop(old)
                self._tokens[pid] = token
                self._fds[fd] = pid
            self._epoll.register(fd, select.EPOLLIN)
            return True

        def _drop(self, fd: int) -> None:
            self._fds.pop(fd, None)
            with contextlib.suppress(OSError, ValueError):
                self._epoll.unregister(fd)
            os.close(fd)

        def _run(self) -> None:
            while not self._stopping:
                for fd, _ in self._epoll.poll():
                    if fd == self._stop_r:
                        return
                    with self._lock:
                        pid = self._fds.get(fd)
                        if pid is not None:
                            self._drop(fd)
                    if pid is not None:
                        self._exited(pid)

        def _close(self) -> None:
            with self._lock:
                for fd in list(self._fds):
                    self._drop(fd)
            self._epoll.close()


if sys.platform != "linux":
    # Type-checked with `mypy --platform freebsd` (.ci/run): typeshed has no kqueue on Linux.

    class KqueueWatcher(_Base):
        """FreeBSD: EVFILT_PROC with NOTE_EXIT, one-shot, on any process we may signal (kqueue(2));
        no descriptor per process."""

        def __init__(self, notify: Callable[[str], None]) -> None:
            super().__init__(notify)
            self._kq = select.kqueue()
            stop = select.kevent(self._stop_r, select.KQ_FILTER_READ, select.KQ_EV_ADD)
            self._kq.control([stop], 0)

        def watch(self, pid: int, token: str) -> bool:
            event = select.kevent(
                pid,
                select.KQ_FILTER_PROC,
                select.KQ_EV_ADD | select.KQ_EV_ONESHOT,
                select.KQ_NOTE_EXIT,
            )
            with self._lock:
                self._tokens[pid] = token
            try:
                self._kq.control([event], 0)
            except ProcessLookupError:
                with self._lock:
                    self._tokens.pop(pid, None)
                return False
            return True

        def _run(self) -> None:
            while not self._stopping:
                for event in self._kq.control(None, 64, None):
                    if event.filter == select.KQ_FILTER_READ:
                        return
                    if event.filter == select.KQ_FILTER_PROC:
                        self._exited(int(event.ident))

        def _close(self) -> None:
            self._kq.close()


def exit_watcher(notify: Callable[[str], None]) -> ExitWatcher | None:
    """The kernel's exit notification for this platform, or None when it has none (the daemon
    then polls its guests on every wake-up instead)."""
    if sys.platform == "linux":
        try:
            probe = os.pidfd_open(os.getpid())
        except OSError:
            return None  # a kernel older than 5.3
        os.close(probe)
        return PidfdWatcher(notify)
    else:  # mypy reads each platform's branch alone
        return KqueueWatcher(notify) if hasattr(select, "KQ_FILTER_PROC") else None
