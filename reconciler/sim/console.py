"""A simulated guest's getty for one console session, and how a session begins.

`open_console` is what `bhyve-reconciler console` does on the simulated host before it runs cu:
it finds the guest's B side and asks the guest (SIGUSR2 to its bhyve.sh) to start `main`, a
small getty(8) on the A side it holds as fd 4. A guest costs a `sh` and no more; only a guest
somebody is connected to has this Python process too, and it ends with the session (the B side
closed) or with the guest.

What it prints follows FreeBSD: getty's `im` banner of the default gettytab entry
(libexec/getty/gettytab: `\\r\\n%s/%m (%h) (%t)\\r\\n\\r\\n`, the first serial port being
ttyu0) and its `login: ` prompt, echoing what is typed; login(1)'s `Password:` (not echoed) and
`Login incorrect` (usr.bin/login/login.c). Nobody can log in: it is a simulated guest.
"""

from __future__ import annotations

import fcntl
import os
import select
import signal
import sys
import time
from pathlib import Path

from reconciler.sim.nmdm import CONSOLE_FD
from reconciler.sim.procs import bhyve_pid

WAIT_FOR_OPEN = 10.0  # seconds for cu to open the B side after the guest was asked
_ERASE = (b"\x7f", b"\x08")
_ENTER = (b"\r", b"\n")


def open_console(root: str, name: str, peer: str, link: str) -> str:
    """Start guest `name`'s getty for a session on its B side `peer` (reached at `link`
    under the root); the path to give cu. LookupError when the guest or its console is not
    there."""
    pid = bhyve_pid(root, name)
    if pid is None:
        raise LookupError(f"{name} is not running on the simulated host: no console to join")
    if not os.path.exists(link):
        raise LookupError(f"{name} is running but its console {peer} is not there")
    os.kill(pid, signal.SIGUSR2)
    return link


class Getty:
    """The login dialogue: bytes typed in, bytes to echo out."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.state = "login"
        self.typed = b""

    def prompt(self) -> bytes:
        return f"\r\nFreeBSD/amd64 ({self.name}) (ttyu0)\r\n\r\nlogin: ".encode()

    def feed(self, data: bytes) -> bytes:
        out = b""
        for byte in (data[i : i + 1] for i in range(len(data))):
            out += self._one(byte)
        return out

    def _one(self, byte: bytes) -> bytes:
        if byte in _ENTER:
            return self._enter()
        if byte in _ERASE:
            if not self.typed:
                return b""
            self.typed = self.typed[:-1]
            return b"\b \b" if self.state == "login" else b""
        if byte < b" ":
            return b""  # other control characters: getty ignores them at this prompt
        self.typed += byte
        return byte if self.state == "login" else b""

    def _enter(self) -> bytes:
        typed, self.typed = self.typed, b""
        if self.state == "login":
            if not typed:
                return b"\r\nlogin: "
            self.state = "password"
            return b"\r\nPassword:"
        self.state = "login"
        return b"\r\nLogin incorrect\r\nlogin: "


def write_all(fd: int, data: bytes) -> None:
    """All of `data` to the (non-blocking) pty master `fd`."""
    while data:
        try:
            data = data[os.write(fd, data) :]
        except BlockingIOError:
            select.select([], [fd], [], 1.0)


def session(fd: int, name: str) -> None:
    """Serve one session on the pty master `fd`: until the B side is closed again (after it
    was opened) or the guest's bhyve is gone. While no one has the B side open the master
    polls as hung up (POLLHUP); that is how the session's start and end are seen.

    The prompt is written only once the open is seen: written before, a person could open the
    B side, read it and leave between two looks of a slow getty, which would then wait out
    WAIT_FOR_OPEN for a session that is already over."""
    parent = os.getppid()
    getty = Getty(name)
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    deadline = time.monotonic() + WAIT_FOR_OPEN
    while _hung_up(poller):
        if os.getppid() != parent or time.monotonic() > deadline:
            return
        time.sleep(0.05)  # nobody on the B side yet
    write_all(fd, getty.prompt())
    while os.getppid() == parent and not _hung_up(poller):
        events = poller.poll(200)
        if any(e & select.POLLIN for _, e in events):
            try:
                data = os.read(fd, 1024)
            except BlockingIOError:
                continue
            except OSError:
                return
            write_all(fd, getty.feed(data))


def _hung_up(poller: select.poll) -> bool:
    return any(e & select.POLLHUP for _, e in poller.poll(0))


def main(argv: list[str]) -> int:
    """`console.py GUEST_DIR`: one session's getty; the guest's console is this fd 4."""
    directory = Path(argv[0])
    lock = os.open(directory / "console.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return 0  # a session is being served already
    session(CONSOLE_FD, directory.name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
