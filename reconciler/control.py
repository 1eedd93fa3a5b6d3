"""How operator commands reach the running daemon, and how only one daemon runs per run_dir.

A UNIX socket `run_dir/control.sock` (mode 0600 in a 0700 run_dir, so only root reaches it)
takes one JSON request per connection and answers one JSON reply. The server thread only
hands requests to the daemon loop and waits for its answer; it decides nothing itself.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import queue
import select
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.errors import DaemonError

SOCKET_NAME = "control.sock"
LOCK_NAME = "daemon.lock"
REPLY_TIMEOUT = 30.0
MAX_REQUEST = 64 * 1024


@dataclass
class Request:
    """One operator command, answered by the daemon loop through `reply`."""

    command: str
    guest: str | None
    _answer: queue.Queue[dict[str, Any]] = field(default_factory=lambda: queue.Queue(maxsize=1))

    def reply(self, ok: bool, message: str) -> None:
        with contextlib.suppress(queue.Full):
            self._answer.put_nowait({"ok": ok, "message": message})


class DaemonLock:
    """An flock on run_dir/daemon.lock, held for the daemon's whole life."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise DaemonError(
                f"another bhyve-reconciler daemon (pid {holder}) already runs on {self.path.parent}"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def daemon_pid(run_dir: Path) -> int | None:
    """The pid of the daemon holding run_dir's lock, or None when no daemon runs there."""
    try:
        fd = os.open(run_dir / LOCK_NAME, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 32, 0).decode(errors="replace").strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


class ControlServer:
    """Accepts operator commands on the socket and submits them to the daemon loop."""

    def __init__(self, run_dir: Path, submit: Callable[[Request], None]) -> None:
        self.path = run_dir / SOCKET_NAME
        self._submit = submit
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        # stop() writes a byte here: the thread waits on the socket and this pipe together, so
        # a daemon's exit never waits for a timeout to come round (procwatch does the same).
        self._wake_r, self._wake_w = -1, -1

    def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # left by a daemon that was killed; the lock says we are alone
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            sock.bind(str(self.path))
        except OSError as exc:
            sock.close()
            raise DaemonError(_cannot_listen(self.path, exc)) from None
        finally:
            os.umask(old)
        sock.listen(16)
        # accept() runs only once poll() saw a connection; a client that gave up meanwhile
        # must not leave the thread blocked in it.
        sock.setblocking(False)
        self._sock = sock
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._serve, name="control", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._wake_w >= 0:
            os.write(self._wake_w, b"x")
        if self._thread is not None:
            # Bounded: a request being answered at this moment waits for the daemon loop,
            # which is exiting.
            self._thread.join(timeout=2)
        if self._sock is not None:
            self._sock.close()
        if self._thread is None or not self._thread.is_alive():
            # A thread still answering polls this pipe once more (and finds the byte): it may
            # be closed only once the thread is gone, or its descriptor could be another file.
            for fd in (self._wake_r, self._wake_w):
                if fd >= 0:
                    os.close(fd)
            self._wake_r, self._wake_w = -1, -1
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def _serve(self) -> None:
        assert self._sock is not None
        poller = select.poll()
        poller.register(self._sock, select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        while True:
            ready = {fd for fd, _ in poller.poll()}
            if self._wake_r in ready:
                return
            try:
                conn, _ = self._sock.accept()
            except BlockingIOError:
                continue  # the client went away between poll() and accept()
            except OSError:
                return
            with conn:
                self._handle(conn)

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        try:
            data = _read_line(conn)
            payload = json.loads(data)
            request = Request(command=str(payload["command"]), guest=payload.get("guest"))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            _send(conn, {"ok": False, "message": f"bad request: {exc}"})
            return
        self._submit(request)
        try:
            answer = request._answer.get(timeout=REPLY_TIMEOUT)
        except queue.Empty:
            answer = {"ok": False, "message": "the daemon did not answer in time"}
        with contextlib.suppress(OSError):
            _send(conn, answer)


def _cannot_listen(path: Path, exc: OSError) -> str:
    if exc.errno is None and "too long" in str(exc):
        # sockaddr_un's sun_path: 104 bytes on FreeBSD, 108 on Linux.
        return (
            f"cannot listen on {path}: the path is too long for a UNIX socket "
            f"({len(str(path))} bytes): choose a shorter run_dir (or --sim-dir)"
        )
    return f"cannot listen on {path}: {exc.strerror or exc}"


def send_command(run_dir: Path, command: str, guest: str | None = None) -> tuple[bool, str]:
    """Ask the daemon on `run_dir`; a clear DaemonError when none runs."""
    path = run_dir / SOCKET_NAME
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(REPLY_TIMEOUT + 5)
    try:
        sock.connect(str(path))
    except (FileNotFoundError, ConnectionRefusedError):
        sock.close()
        raise DaemonError(
            f"no bhyve-reconciler daemon is running on {run_dir} "
            "(start it with `service bhyve_reconciler start` or `bhyve-reconciler run`)"
        ) from None
    except PermissionError:
        sock.close()
        raise DaemonError(f"permission denied on {path}: operator commands need root") from None
    with sock:
        _send(sock, {"command": command, "guest": guest})
        answer = json.loads(_read_line(sock))
    return bool(answer.get("ok")), str(answer.get("message", ""))


def _send(sock: socket.socket, obj: dict[str, Any]) -> None:
    sock.sendall(json.dumps(obj).encode() + b"\n")


def _read_line(sock: socket.socket) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if b"\n" in chunk or size > MAX_REQUEST:
            break
    return b"".join(chunks).split(b"\n", 1)[0]
