"""Status: one row per guest, written atomically to `run_dir/status.json` after every change.

The daemon builds `DaemonStatus` values and writes them; `bhyve-reconciler status` reads the
file (no daemon round trip, so it works while the daemon is busy) and renders a table.
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.host.files import write_atomic

STATUS_FILE = "status.json"
STATES = (
    "running",
    "starting",
    "stopping",
    "stopped",
    "powered-off",
    "crash-loop",
    "held",
    "error",
)


@dataclass(frozen=True)
class GuestStatus:
    name: str
    state: str
    pid: int | None = None
    started_at: float | None = None  # wall clock (epoch seconds) of the current boot
    boots: int = 0
    last_exit: int | None = None  # sh-style status: 128+N for signal N
    last_exit_meaning: str | None = None
    next_restart_at: float | None = None  # wall clock, while in crash-loop
    last_error: str | None = None
    file: str | None = None
    spec_error: str | None = None  # the file is broken: the guest keeps its last good spec


@dataclass(frozen=True)
class DaemonStatus:
    pid: int
    started_at: float
    updated_at: float
    passes: int = 0
    guests: tuple[GuestStatus, ...] = ()
    problems: tuple[str, ...] = ()  # spec and host problems, one line each
    host_errors: tuple[str, ...] = field(default_factory=tuple)


def status_dict(status: DaemonStatus) -> dict[str, object]:
    """Plain data for JSON (what `asdict` does, without its deep copies: rows are flat)."""
    data: dict[str, object] = dict(vars(status))
    data["guests"] = [vars(g) for g in status.guests]
    data["problems"] = list(status.problems)
    data["host_errors"] = list(status.host_errors)
    return data


class StatusWriter:
    """Writes status.json. Rows are frozen and mostly unchanged from one write to the next, so
    each row's JSON is reused, and the whole row list when only the header (the pass count)
    changed: a write at 1,000 guests encodes only what changed."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / STATUS_FILE
        self._rows: tuple[GuestStatus, ...] = ()
        self._rows_text = ""
        self._row_json = functools.lru_cache(maxsize=16384)(_row_json)

    def encode(self, status: DaemonStatus) -> str:
        head = {k: v for k, v in vars(status).items() if k != "guests"}
        head["problems"] = list(status.problems)
        head["host_errors"] = list(status.host_errors)
        if self._rows is not status.guests:
            self._rows = status.guests
            self._rows_text = ",".join(self._row_json(g) for g in status.guests)
        return json.dumps(head)[:-1] + f', "guests": [{self._rows_text}]}}\n'

    def write(self, status: DaemonStatus) -> None:
        # Rewritten after every change and every pass: no fsync, a crash loses nothing.
        write_atomic(self.path, self.encode(status), mode=0o644, durable=False)


def _row_json(row: GuestStatus) -> str:
    return json.dumps(vars(row))


def write_status(run_dir: Path, status: DaemonStatus) -> None:
    StatusWriter(run_dir).write(status)


def read_status(run_dir: Path) -> DaemonStatus | None:
    try:
        data = json.loads((run_dir / STATUS_FILE).read_text())
    except FileNotFoundError:
        return None
    guests = tuple(GuestStatus(**g) for g in data.pop("guests", []))
    problems = tuple(data.pop("problems", []))
    host_errors = tuple(data.pop("host_errors", []))
    return DaemonStatus(**data, guests=guests, problems=problems, host_errors=host_errors)


def format_duration(seconds: float) -> str:
    s = int(seconds)
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{s:02d}s"
    return f"{s}s"


def render_table(status: DaemonStatus, now: float | None = None) -> str:
    now = time.time() if now is None else now
    header = ("NAME", "STATE", "PID", "UPTIME", "BOOTS", "LAST EXIT", "NEXT RESTART", "ERROR")
    rows = [header]
    for g in sorted(status.guests, key=lambda g: g.name):
        uptime = (
            format_duration(now - g.started_at)
            if g.started_at is not None and g.state == "running"
            else "-"
        )
        last = "-" if g.last_exit is None else f"{g.last_exit} ({g.last_exit_meaning})"
        nxt = (
            "-"
            if g.next_restart_at is None
            else f"in {format_duration(max(0.0, g.next_restart_at - now))}"
        )
        error = g.spec_error or g.last_error or "-"
        rows.append((g.name, g.state, str(g.pid or "-"), uptime, str(g.boots), last, nxt, error))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1]
        for r in rows
    ]
    lines.extend(f"problem: {p}" for p in status.problems)
    lines.extend(f"host: {e}" for e in status.host_errors)
    return "\n".join(line.rstrip() for line in lines)
