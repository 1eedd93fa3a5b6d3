"""A simulated cu(1), for a machine that has none: `cu -l LINE` joins a serial line.

Follows FreeBSD's tip/cu (usr.bin/tip/tip/tip.c, cmds.c, cu.1): it prints `Connected`, puts the
terminal in raw mode and passes bytes both ways; `~` at the beginning of a line (after a
return, a newline, ^D or ^U) escapes: `~.` drops the connection (printing `[EOT]`), `~~` sends
one `~`, and `~` with anything else sends both. A line that goes away (EIO) ends it with
`Lost carrier.`. Only what `bhyve-reconciler console` needs: no dialing, no file transfer.
Run by its own wrapper, not as a simulated tool: it neither takes the simulated host's lock nor
goes to its command log, as it runs for as long as a person stays connected.
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
import termios
import tty
from collections.abc import Iterator

ESCAPE = b"~"
_LINE_ENDS = (b"\r", b"\n", b"\x04", b"\x15")  # tip's `eol` default and the return key
USAGE = "usage: cu [-ehot] [-a acu] [-l line] [-s speed] [-#] [phone-number]"


class Escapes:
    """What the keyboard sends to the line, with tip's escapes taken out."""

    def __init__(self) -> None:
        self.beginning = True  # of a line
        self.pending = False  # `~` seen at the beginning of a line
        self.done = False

    def feed(self, data: bytes) -> tuple[bytes, bytes]:
        """(bytes for the line, bytes to show locally)."""
        send = shown = b""
        for byte in (data[i : i + 1] for i in range(len(data))):
            if self.done:
                break
            if self.pending:
                self.pending = False
                if byte == b".":
                    shown += ESCAPE
                    self.done = True
                    continue
                send += byte if byte == ESCAPE else ESCAPE + byte
                self.beginning = byte in _LINE_ENDS
                continue
            if byte == ESCAPE and self.beginning:
                self.pending = True
                continue
            send += byte
            self.beginning = byte in _LINE_ENDS
        return send, shown


def _line_of(argv: list[str]) -> str | None:
    line = None
    args = iter(argv)
    for arg in args:
        if arg == "-l":
            line = next(args, None)
        elif arg.startswith("-l"):
            line = arg[2:]
        elif arg in ("-s", "-a"):
            next(args, None)
    return line


@contextlib.contextmanager
def raw_terminal(fd: int) -> Iterator[None]:
    if not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    tty.setraw(fd)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def relay(keyboard: int, screen: int, line: int) -> str | None:
    """Pass bytes until `~.` (None) or until the line or the keyboard goes away (why)."""
    escapes = Escapes()
    while True:
        ready, _, _ = select.select([keyboard, line], [], [])
        if line in ready:
            try:
                data = os.read(line, 4096)
            except OSError:
                data = b""
            if not data:
                return "Lost carrier."
            os.write(screen, data)
        if keyboard in ready:
            data = os.read(keyboard, 1024)
            if not data:
                return ""
            send, shown = escapes.feed(data)
            if send:
                os.write(line, send)
            if shown:
                os.write(screen, shown)
            if escapes.done:
                return None


def main(argv: list[str]) -> int:
    path = _line_of(argv)
    if path is None:
        print(USAGE, file=sys.stderr)
        return 1
    try:
        line = os.open(path, os.O_RDWR | os.O_NOCTTY)
    except OSError as exc:
        print(f"cu: {path}: {exc.strerror}", file=sys.stderr)
        return 1
    screen = sys.stdout.fileno()
    os.write(screen, b"Connected\r\n")
    with raw_terminal(sys.stdin.fileno()):
        why = relay(sys.stdin.fileno(), screen, line)
        os.write(screen, (f"\r\n{why}" if why else "").encode() + b"\r\n[EOT]\r\n")
    os.close(line)
    return 0
