"""One guest's own page (`bhyve-reconciler status NAME`): what the daemon reports about it,
what its file says, and what is on the host, as text and as JSON.

Pure: a `GuestView` (gathered by the CLI from status.json, the spec file, the disks and the
running boot's record) and a clock value in, text or plain data out.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any

from reconciler.spec import GuestSpec
from reconciler.status import GuestStatus, row_data
from reconciler.statusview import (
    console_name,
    exit_text,
    format_duration,
    format_time,
    next_restart_text,
    state_text,
    stop_progress,
    why,
)


@dataclass(frozen=True)
class DiskView:
    device: str  # what bhyve opens: the file or /dev/zvol/POOL/DATASET
    emulation: str
    size: int | None  # bytes on the host; None when missing or not known
    allocated: int | None  # bytes the file or volume really uses
    wanted: int | None = None  # the spec's size, created when missing
    options: tuple[str, ...] = ()
    found: bool | None = True  # on the host: yes, no, or not known (no host to ask)


@dataclass(frozen=True)
class NicView:
    emulation: str
    tap: str | None
    tap_from: str  # "spec", "running boot", "ledger" (allocated earlier) or "" (allocated later)
    bridge: str | None
    mac: str | None


@dataclass(frozen=True)
class BootLine:
    """The running (or last) boot's command lines, as its record holds them."""

    loader: tuple[str, ...] | None
    bhyve: tuple[str, ...]
    started_at: float | None = None


@dataclass(frozen=True)
class GuestView:
    name: str
    row: GuestStatus | None  # None: the daemon does not know the guest (or never ran)
    spec: GuestSpec | None  # its file's spec, None when the file is missing or invalid
    file: str | None
    file_problems: tuple[str, ...] = ()
    disks: tuple[DiskView, ...] = ()
    nics: tuple[NicView, ...] = ()
    boot: BootLine | None = None
    daemon_running: bool = True


def human_size(n: int | None) -> str:
    """Bytes in binary units, one decimal where it is not exact: 1.2M, 16G."""
    if n is None:
        return "?"
    for unit, factor in (("T", 1 << 40), ("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if n >= factor:
            value = n / factor
            return f"{value:.0f}{unit}" if n % factor == 0 else f"{value:.1f}{unit}"
    return f"{n}B"


def _disk_line(disk: DiskView) -> str:
    if disk.found is None:
        size = "size not known here"
    elif not disk.found:
        size = "missing"
    else:
        size = human_size(disk.size)
    text = f"{disk.emulation}  {disk.device}  {size}"
    if disk.found is False and disk.wanted is not None:
        text += f" (created at {human_size(disk.wanted)} by the next pass)"
    elif disk.allocated is not None:
        text += f", {human_size(disk.allocated)} allocated"
    if disk.options:
        text += f"  [{', '.join(disk.options)}]"
    return text


def _nic_line(nic: NicView) -> str:
    tap = nic.tap or "a tap allocated at boot"
    if nic.tap is not None and nic.tap_from in ("ledger", "running boot"):
        tap += " (allocated)"
    bridge = f" in {nic.bridge}" if nic.bridge else ", no bridge"
    mac = nic.mac or "bhyve's own"
    return f"{nic.emulation}  {tap}{bridge}, MAC {mac}"


def _state_lines(view: GuestView, now: float) -> list[tuple[str, str]]:
    row = view.row
    if row is None:
        where = "" if view.daemon_running else " (no daemon is running)"
        return [("state", f"unknown: the daemon reports nothing about it{where}")]
    restart = view.spec.lifecycle.restart if view.spec is not None else None
    lines = [
        ("state", f"{state_text(row)}; desired: {row.desired}"),
        ("why", why(row, now, restart=restart)),
    ]
    if not view.daemon_running:
        lines.append(("note", "no daemon is running: this is its last status"))
    return lines


def _spec_lines(view: GuestView) -> list[tuple[str, str]]:
    row, spec = view.row, view.spec
    loader = spec.loader if spec is not None else (row.loader if row else None)
    cpus = spec.cpus if spec is not None else (row.cpus if row else None)
    memory = spec.memory if spec is not None else (row.memory if row else None)
    lines = [("loader", loader or "?"), ("cpus", _show(cpus)), ("memory", memory or "?")]
    if row is not None and spec is not None and row.state in ("running", "stopping"):
        running = (row.cpus, row.memory, row.loader)
        if running != (spec.cpus, spec.memory, spec.loader):
            lines.append(
                ("running boot", f"{row.cpus} cpus, {row.memory}, {row.loader} (the file changed)")
            )
    return lines


def _show(value: object) -> str:
    return "?" if value is None else str(value)


def _device_lines(view: GuestView) -> list[tuple[str, str]]:
    spec, row = view.spec, view.row
    lines = [("disks", "" if view.disks else "?")]
    lines += [("", _disk_line(d)) for d in view.disks]
    lines += [("nics", "" if view.nics else "none" if spec is not None else "?")]
    lines += [("", _nic_line(n)) for n in view.nics]
    if spec is not None and spec.install is not None:
        force = " (always: force = true)" if spec.install.force else ""
        lines.append(("install media", f"{spec.install.iso}{force}"))
    device = spec.console_device if spec is not None else (row.console if row else None)
    peer = console_name(device)
    if peer is not None and peer != device:
        lines.append(("console", f"/dev/{peer} (bhyve-reconciler console {view.name})"))
    else:
        lines.append(("console", device or "?"))
    vnc = spec.graphics.listen if spec is not None and spec.graphics else (row.vnc if row else None)
    lines.append(("vnc", f"vnc://{vnc}" if vnc else "none"))
    return lines


def _history_lines(row: GuestStatus | None, now: float) -> list[tuple[str, str]]:
    if row is None:
        return []
    started = f" (since {format_time(row.started_at)})" if row.started_at is not None else ""
    uptime = "-"
    if row.started_at is not None and row.state in ("running", "stopping"):
        uptime = format_duration(max(0.0, now - row.started_at)) + started
    lines = [("boots", str(row.boots)), ("pid", str(row.pid or "-")), ("uptime", uptime)]
    if row.recent_exits:
        lines.append(("last exits", ""))
        lines += [
            ("", f"{format_time(e.at)}  {e.phase} {_show(e.status)} ({e.meaning})")
            for e in reversed(row.recent_exits)
        ]
    else:
        lines.append(("last exit", exit_text(row)))
    if row.state == "crash-loop":
        backoff = f"next boot {next_restart_text(row, now)}, after {row.restart_streak} failures"
    else:
        backoff = "none"
    lines.append(("backoff", backoff))
    lines.append(("hold", "held by `stop`" if row.state == "held" else "none"))
    if row.state == "stopping":
        lines.append(("stopping", stop_progress(row, now)))
    elif row.last_stop is not None:
        lines.append(("last stop", row.last_stop))
    lines.append(("last error", row.last_error or "none"))
    return lines


def render_guest(view: GuestView, now: float) -> str:
    """The guest's page: `key: value` lines, nested lines indented under their key."""
    pairs: list[tuple[str, str]] = [("spec file", view.file or "none")]
    pairs += [("file problem", p) for p in view.file_problems]
    pairs += _state_lines(view, now)
    pairs += _spec_lines(view)
    pairs += _device_lines(view)
    pairs += _history_lines(view.row, now)
    boot = view.boot
    if boot is not None:
        started = f" (started {format_time(boot.started_at)})" if boot.started_at else ""
        pairs.append(("command line", started.strip()))
        if boot.loader:
            pairs.append(("", shlex.join(boot.loader)))
        pairs.append(("", shlex.join(boot.bhyve)))
    width = max(len(key) for key, _ in pairs) + 2
    lines = [view.name]
    for key, value in pairs:
        if key:
            lines.append(f"  {(key + ':').ljust(width)}{value}".rstrip())
        else:
            lines.append(f"    {value}")
    return "\n".join(lines)


def guest_json(view: GuestView, now: float) -> dict[str, Any]:
    """The same page as plain data."""
    row = view.row
    boot = view.boot
    return {
        "name": view.name,
        "file": view.file,
        "file_problems": list(view.file_problems),
        "daemon_running": view.daemon_running,
        "status": row_data(row) if row is not None else None,
        "why": why(row, now, restart=view.spec.lifecycle.restart if view.spec else None)
        if row is not None
        else None,
        "loader": view.spec.loader if view.spec else (row.loader if row else None),
        "cpus": view.spec.cpus if view.spec else (row.cpus if row else None),
        "memory": view.spec.memory if view.spec else (row.memory if row else None),
        "disks": [
            {
                "device": d.device,
                "emulation": d.emulation,
                "size": d.size,
                "allocated": d.allocated,
                "wanted": d.wanted,
                "options": list(d.options),
                "found": d.found,
            }
            for d in view.disks
        ],
        "nics": [
            {
                "emulation": n.emulation,
                "tap": n.tap,
                "tap_from": n.tap_from,
                "bridge": n.bridge,
                "mac": n.mac,
            }
            for n in view.nics
        ],
        "command_line": None
        if boot is None
        else {
            "loader": list(boot.loader) if boot.loader else None,
            "bhyve": list(boot.bhyve),
            "started_at": boot.started_at,
        },
    }
