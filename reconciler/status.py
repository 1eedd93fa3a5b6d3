"""Status: one row per guest, one shape from the supervisor to `run_dir/status.json` and back.

A supervisor builds its own `GuestStatus` (times already on the wall clock); the daemon adds its
header, `StatusWriter` writes the file atomically after every change, and `bhyve-reconciler
status` reads it back (no daemon round trip, so it works while the daemon is busy); the
renderings are `statusview.py`'s. Rows are frozen: a row that did not change is the same object,
and its JSON is reused.

What a row holds is what only the daemon knows (the state and why: desired state, stop phase
and deadline, how the last stop ended, recent exits, the crash backoff) plus the few values of
the running boot's spec that the table shows for every guest (CPUs, memory, loader, console,
VNC). What the CLI can read itself stays out of it: the spec file (disks, NICs), the disks'
allocation, the running boot's command line (`run_dir/guests/NAME/cmdline`) and its output.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from reconciler.errors import SpecError, StateError
from reconciler.host.files import read_json, write_atomic
from reconciler.specdir import ConfSnapshot

STATUS_FILE = "status.json"
_RECOVERY = "wait for the daemon to write it again (it does after every change), or remove it"


@dataclass(frozen=True)
class ExitEntry:
    """One boot's end: when (wall clock), sh-style status (None: no record), meaning, phase."""

    at: float
    status: int | None
    meaning: str
    phase: str = "bhyve"


@dataclass(frozen=True)
class GuestStatus:
    name: str
    state: str
    desired: str = "running"  # running, stopped, removed (its file is gone), shutdown
    pid: int | None = None
    started_at: float | None = None  # wall clock (epoch seconds) of the current boot
    boots: int = 0
    last_exit: int | None = None  # sh-style status: 128+N for signal N
    last_exit_meaning: str | None = None
    next_restart_at: float | None = None  # wall clock, while in crash-loop
    last_error: str | None = None
    file: str | None = None
    spec_error: str | None = None  # the file is broken: the guest keeps its last good spec
    host: str | None = None  # state elsewhere: the host its file names; waiting: the lock's
    # The spec of the running boot (else the accepted one), as the table shows it.
    cpus: int | None = None
    memory: str | None = None
    memory_bytes: int | None = None  # the accepted spec's, for metrics
    restarts: Mapping[str, int] = field(default_factory=dict)  # reason -> count, this daemon
    loader: str | None = None
    console: str | None = None  # the device bhyve opens (an nmdm A side, or a tty)
    vnc: str | None = None  # the framebuffer's "host:port"
    # While stopping: acpi, loader, poweroff or kill, and when that phase ends (wall clock).
    stop_phase: str | None = None
    stop_deadline: float | None = None
    stop_timeout: float | None = None
    last_stop: str | None = None  # how the last stop ended: acpi, loader, forced-poweroff, killed
    restart_streak: int = 0  # quick failures in a row (the crash backoff's exponent)
    recent_exits: tuple[ExitEntry, ...] = ()  # oldest first


@dataclass(frozen=True)
class DaemonStatus:
    pid: int
    started_at: float
    updated_at: float
    passes: int = 0
    guests: tuple[GuestStatus, ...] = ()
    problems: tuple[str, ...] = ()  # spec problems, one line each
    host_errors: tuple[str, ...] = ()


_ROW_FIELDS = tuple(f.name for f in fields(GuestStatus))
_EXIT_FIELDS = tuple(f.name for f in fields(ExitEntry))
_HEAD_FIELDS = tuple(f.name for f in fields(DaemonStatus) if f.name != "guests")


class StatusWriter:
    """Writes status.json. Each row's JSON is kept by the row object that produced it, so a
    write at 1,000 guests encodes only the rows that changed."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / STATUS_FILE
        self._encoded: dict[str, tuple[GuestStatus, str]] = {}
        self._last: DaemonStatus | None = None

    def encode(self, status: DaemonStatus) -> str:
        head = {name: getattr(status, name) for name in _HEAD_FIELDS}
        head["problems"] = list(status.problems)
        head["host_errors"] = list(status.host_errors)
        rows = []
        encoded: dict[str, tuple[GuestStatus, str]] = {}
        for row in status.guests:
            cached = self._encoded.get(row.name)
            text = cached[1] if cached is not None and cached[0] is row else _row_json(row)
            encoded[row.name] = (row, text)
            rows.append(text)
        self._encoded = encoded
        return json.dumps(head)[:-1] + f', "guests": [{",".join(rows)}]}}\n'

    @property
    def last(self) -> DaemonStatus | None:
        """The status as status.json last received it."""
        return self._last

    def write(self, status: DaemonStatus) -> None:
        """Rewritten after every change: no fsync, a crash loses nothing. Raises OSError."""
        write_atomic(self.path, self.encode(status), mode=0o644, durable=False)
        self._last = status

    def write_if_changed(self, status: DaemonStatus) -> None:
        """Write unless only the time of the update moved since the last write."""
        last = self._last
        if last is None or replace(status, updated_at=last.updated_at) != last:
            self.write(status)


def status_json(status: DaemonStatus) -> dict[str, object]:
    """The status as plain data, as status.json holds it (for `status --json`)."""
    data: dict[str, object] = {name: getattr(status, name) for name in _HEAD_FIELDS}
    data["problems"] = list(status.problems)
    data["host_errors"] = list(status.host_errors)
    data["guests"] = [row_data(row) for row in status.guests]
    return data


def row_data(row: GuestStatus) -> dict[str, Any]:
    """One row as plain data (its recent exits as objects)."""
    data = {name: getattr(row, name) for name in _ROW_FIELDS}
    data["recent_exits"] = [asdict(e) for e in row.recent_exits]
    return data


def row_from_data(data: object) -> GuestStatus:
    """A row back from plain data; TypeError or ValueError when it is not one."""
    known = _known(data, _ROW_FIELDS)
    exits = known.get("recent_exits", [])
    if not isinstance(exits, list):
        raise TypeError("recent_exits is not a list")
    known["recent_exits"] = tuple(ExitEntry(**_known(e, _EXIT_FIELDS)) for e in exits)
    return GuestStatus(**known)


def _row_json(row: GuestStatus) -> str:
    return json.dumps(row_data(row))


def read_status(run_dir: Path) -> DaemonStatus | None:
    """The daemon's last status, None when it never ran there; a StateError naming the file
    when it is unreadable or damaged."""
    path = run_dir / STATUS_FILE
    data = read_json(path, what="status file", recover=_RECOVERY)
    if data is None:
        return None
    try:
        if not isinstance(data, dict):
            raise TypeError("not a JSON object")
        rows = data.get("guests", [])
        if not isinstance(rows, list):
            raise TypeError("guests is not a list")
        guests = tuple(row_from_data(row) for row in rows)
        head = _known(data, _HEAD_FIELDS)
        head["problems"] = tuple(head.get("problems", ()))
        head["host_errors"] = tuple(head.get("host_errors", ()))
        return DaemonStatus(**head, guests=guests)
    except (TypeError, ValueError) as exc:
        raise StateError(path, f"the status file is damaged: {exc}", _RECOVERY) from exc


def _known(row: object, names: tuple[str, ...]) -> dict[str, Any]:
    """The fields of a row this version knows (a newer daemon may have written more)."""
    if not isinstance(row, dict):
        raise TypeError(f"expected a JSON object, got {type(row).__name__}")
    return {k: v for k, v in row.items() if k in names}


def problem_lines(problems: Iterable[SpecError]) -> tuple[str, ...]:
    return tuple(
        f"{p.file}: {p.key}: {'warning: ' if p.warning else ''}{p.message}" for p in problems
    )


def file_errors(snapshot: ConfSnapshot) -> dict[str, str]:
    """Guest -> the first error of its file, for a guest whose file is broken (it keeps its
    last good spec, and its status row says why its file is not being followed)."""
    errors: dict[str, str] = {}
    for p in snapshot.errors:
        owner = snapshot.files.get(p.file)
        if owner is not None and owner.guest:
            errors.setdefault(owner.guest, f"{p.file}: {p.key}: {p.message}")
    return errors
