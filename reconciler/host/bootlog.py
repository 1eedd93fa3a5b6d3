"""A guest's boot output (`run_dir/guests/NAME/boot.log`) kept bounded, read back, and the
running boot's command line (`cmdline.json`) written once per boot.

The loader's and bhyve's stdout and stderr go to boot.log, opened with O_APPEND by every boot.
A guest that makes bhyve print forever (an unhandled MSR in a loop) must not fill the disk, and
the daemon is not the boot's lifeline (it cannot be the reader of a pipe), so the file is cut
as newsyslog's and logrotate's "copytruncate" do: its last `limit` bytes are copied to
`boot.log.0`, then it is truncated in place; O_APPEND writers carry on at the new end. The
daemon does it at every boot and on a timer (`BootLogKeeper`); the CLI only reads.
"""

from __future__ import annotations

import json
import os
import shlex
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from reconciler.host.files import write_atomic

BOOT_LOG = "boot.log"
ROTATED_SUFFIX = ".0"
CMDLINE = "cmdline.json"
LIMIT = 1 << 20  # bytes kept in boot.log before it is cut (and as much again in boot.log.0)
CHECK_EVERY = 10.0  # seconds between the daemon's looks at the logs of live guests
_BLOCK = 64 * 1024


def rotated(path: Path) -> Path:
    return path.with_name(path.name + ROTATED_SUFFIX)


def rotate_if_large(path: Path, limit: int = LIMIT) -> bool:
    """Cut `path` once it holds more than `limit` bytes; True when it was cut. Raises OSError
    (a full disk) for the caller to report; a missing file is not an error."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return False
    if size <= limit:
        return False
    keep = rotated(path)
    tmp = keep.with_name(keep.name + ".tmp")
    with open(path, "rb") as src, open(tmp, "wb") as dst:
        src.seek(max(0, size - limit))
        remaining = limit
        while remaining > 0:
            chunk = src.read(min(_BLOCK, remaining))
            if not chunk:
                break
            dst.write(chunk)
            remaining -= len(chunk)
    os.replace(tmp, keep)
    # Truncate in place: the writers hold it open with O_APPEND, so they go on at offset 0.
    os.truncate(path, 0)
    return True


class BootLogKeeper:
    """Cuts the boot logs of live guests, at most every `every` seconds (one stat each)."""

    def __init__(
        self,
        *,
        every: float = CHECK_EVERY,
        limit: int = LIMIT,
        on_error: Callable[[Path, OSError], None] = lambda path, exc: None,
    ) -> None:
        self.every = every
        self.limit = limit
        self._on_error = on_error
        self.due = 0.0  # when the next look is due

    def tick(self, now: float, logs: Callable[[], Iterable[Path]]) -> list[Path]:
        """When due, cut every log `logs()` names that grew past the limit; what was cut."""
        if now < self.due:
            return []
        self.due = now + self.every
        cut = []
        for path in logs():
            try:
                if rotate_if_large(path, self.limit):
                    cut.append(path)
            except OSError as exc:
                self._on_error(path, exc)
        return cut


def tail(path: Path, lines: int, *, end: int | None = None) -> list[bytes]:
    """The last `lines` lines of the boot log (of its first `end` bytes, when given), older
    ones from `boot.log.0` when needed."""
    if lines <= 0:
        return []
    found = _tail_of(path, lines, end)
    if len(found) < lines:
        found = _tail_of(rotated(path), lines - len(found), None) + found
    return found


def size_of(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _tail_of(path: Path, lines: int, end: int | None) -> list[bytes]:
    """Reads backwards in blocks: a large file costs only what is shown."""
    try:
        f = open(path, "rb")  # noqa: SIM115
    except FileNotFoundError:
        return []
    with f:
        size = f.seek(0, os.SEEK_END)
        pos = size if end is None else min(end, size)
        data = b""
        while pos > 0 and data.count(b"\n") <= lines:
            step = min(_BLOCK, pos)
            pos -= step
            f.seek(pos)
            data = f.read(step) + data
    found = data.splitlines(keepends=True)
    return found[-lines:]


def follow(
    path: Path,
    *,
    offset: int | None = None,
    poll: float = 0.25,
    sleep: Callable[[float], None] = time.sleep,
    stop: Callable[[], bool] = lambda: False,
) -> Iterator[bytes]:
    """What is appended to `path` after `offset` (default: from now on); after a cut (the
    file shrank) from its start again, as `tail -F` does. Ends when `stop()` says so."""
    if offset is None:
        offset = size_of(path)
    while not stop():
        size = size_of(path)
        if size < offset:
            offset = 0
        if size > offset:
            with open(path, "rb") as f:
                f.seek(offset)
                data = f.read(size - offset)
            offset += len(data)
            yield data
            continue
        sleep(poll)


@dataclass(frozen=True)
class BootCommand:
    """The command lines one boot runs, and when it began (wall clock)."""

    loader: tuple[str, ...] | None
    bhyve: tuple[str, ...]
    started_at: float


def write_boot_command(guest_dir: Path, command: BootCommand) -> None:
    """Written by the daemon as a boot begins; `status NAME` shows it."""
    data = {
        "loader": list(command.loader) if command.loader else None,
        "bhyve": list(command.bhyve),
        "started_at": command.started_at,
    }
    write_atomic(guest_dir / CMDLINE, json.dumps(data) + "\n", mode=0o644, durable=False)


def read_boot_command(guest_dir: Path) -> BootCommand | None:
    """The last boot's command lines; None when missing or not readable as one."""
    try:
        data = json.loads((guest_dir / CMDLINE).read_text())
        loader = data["loader"]
        return BootCommand(
            loader=tuple(str(a) for a in loader) if loader else None,
            bhyve=tuple(str(a) for a in data["bhyve"]),
            started_at=float(data["started_at"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def boot_header(command: BootCommand) -> bytes:
    """The line written to boot.log before a boot's own output, so `logs` shows where each
    boot begins."""
    when = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(command.started_at))
    line = f"--- {when} boot: {shlex.join(command.bhyve)}\n"
    return line.encode("utf-8", "surrogateescape")


def note_boot(guest_dir: Path, command: BootCommand) -> None:
    """As a boot begins: cut its log if it grew too large, record its command lines, and
    mark where its output begins. Best effort: a full disk must not keep a guest from
    booting for the sake of its log."""
    log = guest_dir / BOOT_LOG
    try:
        rotate_if_large(log)
        write_boot_command(guest_dir, command)
        with open(log, "ab") as f:
            f.write(boot_header(command))
    except OSError:
        pass
