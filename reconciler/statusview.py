"""How status rows read to a person: the table, the wide table, and why a guest is in its state.

Pure: rows and a clock value in, text out. A guest's own page (`status NAME`) is
`guestview.py`'s; both share the cell texts defined here, so a state or an exit reads the same
everywhere.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from reconciler.status import DaemonStatus, GuestStatus

ERROR_WIDTH = 60  # the ERROR column's width in the narrow table; `--wide` shows it whole
_FORCED = {"forced-poweroff": "forced poweroff", "killed": "killed"}
_OFF_STATES = ("stopped", "held")

NARROW = (
    "NAME", "STATE", "CPUS", "MEMORY", "LOADER", "CONSOLE/VNC", "PID", "UPTIME", "BOOTS",
    "LAST EXIT", "NEXT RESTART", "ERROR",
)  # fmt: skip
WIDE = (
    "NAME", "STATE", "DESIRED", "CPUS", "MEMORY", "LOADER", "CONSOLE", "VNC", "PID", "STARTED",
    "UPTIME", "BOOTS", "LAST EXIT", "LAST STOP", "NEXT RESTART", "FILE", "ERROR",
)  # fmt: skip


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


def format_time(wall: float) -> str:
    """A wall-clock time in UTC, to the second."""
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(wall))


def forced(row: GuestStatus) -> bool:
    """The guest is off after a stop that had to force it (power-off or SIGKILL)."""
    return row.state in _OFF_STATES and row.last_stop in _FORCED


def state_text(row: GuestStatus) -> str:
    if row.state == "elsewhere":  # a fleet guest: the host its file places it on
        return f"elsewhere ({row.host})" if row.host else "unplaced (no host key)"
    return f"{row.state} (forced)" if forced(row) else row.state


def exit_text(row: GuestStatus) -> str:
    """LAST EXIT: the status and its meaning; a stop's forced power-off says so."""
    if row.last_exit is None:
        return "-"
    meaning = row.last_exit_meaning or "unknown"
    if forced(row) and row.last_stop is not None:
        meaning = _FORCED[row.last_stop]
    return f"{row.last_exit} ({meaning})"


def console_name(device: str | None) -> str | None:
    """What a person connects to: an nmdm pair's B side, or the console device itself."""
    if device is None:
        return None
    if device.startswith("/dev/nmdm") and device.endswith("A"):
        return device[:-1].removeprefix("/dev/") + "B"
    return device


def uptime_text(row: GuestStatus, now: float) -> str:
    if row.started_at is None or row.state not in ("running", "stopping"):
        return "-"
    return format_duration(max(0.0, now - row.started_at))


def next_restart_text(row: GuestStatus, now: float) -> str:
    if row.next_restart_at is None:
        return "-"
    return f"in {format_duration(max(0.0, row.next_restart_at - now))}"


def error_text(row: GuestStatus) -> str:
    return row.spec_error or row.last_error or "-"


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _narrow_cells(row: GuestStatus, now: float) -> tuple[str, ...]:
    console = console_name(row.console) or "-"
    if row.vnc is not None:
        console = f"{console} vnc://{row.vnc}"
    return (
        row.name,
        state_text(row),
        _opt(row.cpus),
        row.memory or "-",
        row.loader or "-",
        console,
        _opt(row.pid),
        uptime_text(row, now),
        str(row.boots),
        exit_text(row),
        next_restart_text(row, now),
        _short(error_text(row), ERROR_WIDTH),
    )


def _wide_cells(row: GuestStatus, now: float) -> tuple[str, ...]:
    return (
        row.name,
        state_text(row),
        row.desired,
        _opt(row.cpus),
        row.memory or "-",
        row.loader or "-",
        console_name(row.console) or "-",
        row.vnc or "-",
        _opt(row.pid),
        format_time(row.started_at) if row.started_at is not None else "-",
        uptime_text(row, now),
        str(row.boots),
        exit_text(row),
        row.last_stop or "-",
        next_restart_text(row, now),
        row.file or "-",
        error_text(row),
    )


def _opt(value: object) -> str:
    return "-" if value is None else str(value)


def columns(rows: Sequence[Sequence[str]]) -> list[str]:
    """Left-aligned columns two spaces apart; the last one is not padded."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return [
        ("  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1]).rstrip()
        for r in rows
    ]


def render_table(status: DaemonStatus, now: float | None = None, *, wide: bool = False) -> str:
    """One row per guest, then what no row shows: problems of files that no guest's ERROR
    already names, and host errors."""
    now = time.time() if now is None else now
    cells = _wide_cells if wide else _narrow_cells
    rows: list[tuple[str, ...]] = [WIDE if wide else NARROW]
    rows += [cells(g, now) for g in sorted(status.guests, key=lambda g: g.name)]
    lines = columns(rows)
    shown = {g.spec_error for g in status.guests if g.spec_error is not None}
    lines.extend(f"problem: {p}" for p in status.problems if p not in shown)
    lines.extend(f"host: {e}" for e in status.host_errors)
    return "\n".join(lines)


def why(row: GuestStatus, now: float, *, restart: str | None = None) -> str:
    """Why the guest is in its state, and what would change it. `restart` is its file's
    restart policy when known."""
    state = row.state
    if state == "stopping":
        return stop_progress(row, now)
    if row.desired == "removed":
        return "its file is gone: it is stopped, then forgotten"
    if row.desired == "shutdown":
        return "the daemon is stopping: every guest is stopped"
    if row.desired == "stopped" and state in ("stopped", "held"):
        return 'its file says state = "stopped"'
    if state == "running":
        return f"bhyve runs (pid {row.pid})"
    if state == "starting":
        if row.started_at is not None:
            return "its loader runs; bhyve starts next"
        return "a boot is due"
    return _why_off(row, now, restart)


def _why_off(row: GuestStatus, now: float, restart: str | None) -> str:
    name, state = row.name, row.state
    policy = f'restart = "{restart}"' if restart is not None else "its restart policy"
    if state == "held":
        how = _stop_how(row)
        return (
            f"held by `bhyve-reconciler stop`{how}: `bhyve-reconciler start {name}` or an edit "
            "to its file boots it"
        )
    exited = f"it exited {exit_text(row)}"
    if state == "powered-off":
        return (
            f"{exited}, stopping itself, and {policy} leaves it off: "
            f"`bhyve-reconciler start {name}` boots it"
        )
    if state == "crash-loop":
        streak = row.restart_streak
        failures = f"{streak} quick failure{'s' if streak != 1 else ''} in a row"
        return (
            f"{exited}, a failure; the next boot is {next_restart_text(row, now)} "
            f"(crash backoff after {failures})"
        )
    if state == "error":
        return (
            f"{exited}, a failure, and {policy} leaves it off: "
            f"`bhyve-reconciler start {name}` or an edit to its file boots it"
        )
    return f"not booted yet{_stop_how(row)}"


def _stop_how(row: GuestStatus) -> str:
    if row.last_stop in _FORCED:
        return f"; its stop had to be forced ({_FORCED[row.last_stop]})"
    if row.last_stop == "acpi":
        return "; it shut down on ACPI"
    return ""


_PHASES = {
    "acpi": ("ACPI shutdown requested (power button)", "forced power-off"),
    "loader": ("its loader was asked to quit (SIGTERM)", "SIGKILL"),
    "poweroff": ("no ACPI shutdown in time: forced power-off", "SIGKILL"),
    "kill": ("killed (SIGKILL)", "giving up"),
}


def stop_progress(row: GuestStatus, now: float) -> str:
    """A stopping guest's phase and the seconds left before the next step."""
    phase = row.stop_phase or "acpi"
    what, then = _PHASES.get(phase, (phase, "the next step"))
    if row.stop_deadline is None:
        return what
    left = max(0, round(row.stop_deadline - now))
    return f"{what}; {then} in {left}s"
