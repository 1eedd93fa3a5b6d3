"""`status` and `logs`: what the daemon reports, what the files say, what the guests printed.

`status` reads the daemon's status.json (no round trip, so it answers while the daemon is
busy); `status NAME` adds what the CLI reads itself: the spec file, the disks on the host, the
running boot's command line. `logs` reads a guest's boot.log. None of them changes anything.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

from reconciler.cli.context import Context, open_host
from reconciler.cli.inspect import EXIT_ERROR, EXIT_OK
from reconciler.cli.parser import Commands, json_option
from reconciler.control import daemon_pid
from reconciler.errors import ReconcilerError
from reconciler.guestfile import parse_guest_text
from reconciler.guestview import BootLine, DiskView, GuestView, NicView, guest_json, render_guest
from reconciler.host.bootlog import BOOT_LOG, follow, read_boot_command, size_of, tail
from reconciler.host.files import load_ledger
from reconciler.host.guests import guest_run_dir
from reconciler.spec import Disk, GuestSpec
from reconciler.specdir import ConfDir
from reconciler.status import DaemonStatus, GuestStatus, read_status, status_json
from reconciler.statusview import render_table

_NIC_EMULATIONS = ("virtio-net", "e1000")


def register(commands: Commands) -> None:
    st = commands.add(
        "status",
        "one row per guest from the daemon's status file, or one guest in detail",
        cmd_status,
        exits=((EXIT_OK, "shown"),
               (EXIT_ERROR, "no daemon ever ran on run_dir, or no guest of that name")),
        details=(
            "Columns: NAME, STATE, CPUS, MEMORY, LOADER, CONSOLE/VNC, PID, UPTIME, BOOTS, "
            "LAST EXIT (status and meaning), NEXT RESTART (while in crash-loop) and ERROR. "
            "`status NAME` shows the guest's spec file, desired and actual state and why, its "
            "disks (size and allocation), NICs, console, recent exits, backoff and the running "
            "boot's command line."
        ),
    )  # fmt: skip
    st.add_argument("name", metavar="NAME", nargs="?", help="show this guest in detail")
    st.add_argument("--all", action="store_true", help="also the guests placed on other hosts")
    st.add_argument(
        "--wide", action="store_true", help="more columns: desired state, times, file, full error"
    )
    json_option(st, "the status")
    lg = commands.add(
        "logs",
        "print a guest's loader and bhyve output (its boot.log)",
        cmd_logs,
        exits=((EXIT_OK, "printed (or -f ended with Ctrl-C)"),
               (EXIT_ERROR, "the guest never booted here")),
        details=(
            "The guest console is not here: `bhyve-reconciler console NAME` is. The file is "
            "kept under 1 MiB (the older part moves to boot.log.0), so a guest that makes bhyve "
            "print forever cannot fill the disk."
        ),
    )  # fmt: skip
    lg.add_argument("name", metavar="NAME", help="the guest's name")
    lg.add_argument(
        "-n", "--lines", type=int, default=20, metavar="N", help="the last N lines (default 20)"
    )
    lg.add_argument(
        "-f", "--follow", action="store_true", help="keep printing what is appended, as tail -f"
    )


def cmd_status(ctx: Context, args: argparse.Namespace) -> int:
    status = read_status(ctx.config.run_dir)
    running = daemon_pid(ctx.config.run_dir) is not None
    if args.name is not None:
        return show_guest(ctx, args, status, running)
    if status is None:
        print(
            f"bhyve-reconciler: no status in {ctx.config.run_dir}: the daemon has not run there",
            file=sys.stderr,
        )
        return EXIT_ERROR
    away = sum(g.state == "elsewhere" for g in status.guests)
    if not args.all:
        status = replace(status, guests=tuple(g for g in status.guests if g.state != "elsewhere"))
    if args.json:
        print(json.dumps({"daemon_running": running, **status_json(status)}, indent=2))
        return EXIT_OK
    if not running:
        print(f"(no daemon is running on {ctx.config.run_dir}: this is its last status)")
    print(render_table(status, wide=args.wide))
    if away and not args.all:
        print(f"({away} guest(s) placed on other hosts: status --all lists them)")
    return EXIT_OK


def show_guest(
    ctx: Context, args: argparse.Namespace, status: DaemonStatus | None, running: bool
) -> int:
    name: str = args.name
    row = next((g for g in status.guests if g.name == name), None) if status else None
    spec, file, problems = find_spec(ctx, name, row)
    if row is None and spec is None and file is None:
        print(f"bhyve-reconciler: no guest named {name!r}", file=sys.stderr)
        return EXIT_ERROR
    view = gather(ctx, name, row, spec, file, problems, daemon_running=running)
    now = time.time()
    if args.json:
        print(json.dumps(guest_json(view, now), indent=2))
    else:
        print(render_guest(view, now))
    return EXIT_OK


def find_spec(
    ctx: Context, name: str, row: GuestStatus | None
) -> tuple[GuestSpec | None, str | None, tuple[str, ...]]:
    """The guest's spec from its file (the row names it; else a scan of conf_dir), the file,
    and its problems."""
    if row is not None and row.file:
        path = Path(row.file)
        try:
            text = path.read_bytes()
        except OSError as exc:
            return None, row.file, (f"cannot read it: {exc.strerror}",)
        spec, errors = parse_guest_text(text, file=row.file, stem=path.stem)
        return spec, row.file, tuple(f"{e.key}: {e.message}" for e in errors)
    snapshot = ConfDir(ctx.config.conf_dir, root=ctx.root).scan()
    spec = snapshot.guests.get(name)
    if spec is not None:
        return spec, spec.source, ()
    return None, None, ()


def gather(
    ctx: Context,
    name: str,
    row: GuestStatus | None,
    spec: GuestSpec | None,
    file: str | None,
    problems: tuple[str, ...],
    *,
    daemon_running: bool,
) -> GuestView:
    live = row is not None and row.state in ("running", "stopping", "starting")
    record = read_boot_command(guest_run_dir(ctx.config.run_dir, name)) if live else None
    boot = BootLine(record.loader, record.bhyve, record.started_at) if record else None
    disks = tuple(disk_view(ctx, d) for d in spec.disks) if spec is not None else ()
    return GuestView(
        name=name,
        row=row,
        spec=spec,
        file=file,
        file_problems=problems,
        disks=disks,
        nics=nic_views(ctx, name, spec, boot),
        boot=boot,
        daemon_running=daemon_running,
    )


def host_path(ctx: Context, path: str) -> Path:
    return ctx.root / path.lstrip("/")


def disk_view(ctx: Context, disk: Disk) -> DiskView:
    if disk.zvol is not None:
        return zvol_view(ctx, disk)
    try:
        st = host_path(ctx, disk.device).stat()
    except OSError:
        return DiskView(disk.device, disk.emulation, None, None, disk.size, disk.options, False)
    return DiskView(
        disk.device, disk.emulation, st.st_size, st.st_blocks * 512, disk.size, disk.options
    )


def zvol_view(ctx: Context, disk: Disk) -> DiskView:
    """volsize and referenced from one `zfs get`; not known off FreeBSD (no host to ask)."""
    assert disk.zvol is not None
    unknown = DiskView(disk.device, disk.emulation, None, None, disk.size, disk.options, None)
    if ctx.host_kind == "none":
        return unknown
    try:
        host = open_host(ctx)
    except ReconcilerError:
        return unknown
    argv = ["zfs", "get", "-Hp", "-o", "value", "volsize,referenced", disk.zvol]
    result = host.runner.run(argv)
    values = result.stdout.decode("ascii", "replace").split()
    if "dataset does not exist" in result.error_text:
        return replace(unknown, found=False)
    if not result.ok or len(values) != 2 or not all(v.isdigit() for v in values):
        return unknown
    return replace(unknown, size=int(values[0]), allocated=int(values[1]), found=True)


def nic_views(
    ctx: Context, name: str, spec: GuestSpec | None, boot: BootLine | None
) -> tuple[NicView, ...]:
    """Each NIC with its tap: the running boot's, the spec's, or the one the ledger keeps for
    the guest (allocated at an earlier boot)."""
    if spec is None:
        return ()
    running = boot_taps(boot.bhyve) if boot is not None else []
    kept = iter(load_ledger(ctx.config.state_dir).taps_of(name))
    views = []
    for index, nic in enumerate(spec.nics):
        tap: str | None
        if index < len(running):
            tap, origin = running[index], "spec" if nic.tap else "running boot"
        elif nic.tap is not None:
            tap, origin = nic.tap, "spec"
        else:
            tap = next(kept, None)
            origin = "ledger" if tap is not None else ""
        views.append(NicView(nic.emulation, tap, origin, nic.bridge, nic.mac))
    return tuple(views)


def boot_taps(bhyve: tuple[str, ...]) -> list[str]:
    """The taps of a bhyve argv's NICs (`-s 2:0,virtio-net,tap0,mac=...`), in slot order."""
    taps = []
    for flag, value in itertools.pairwise(bhyve):
        parts = value.split(",")
        if flag == "-s" and len(parts) >= 3 and parts[1] in _NIC_EMULATIONS:
            taps.append(parts[2])
    return taps


def cmd_logs(ctx: Context, args: argparse.Namespace) -> int:
    directory = guest_run_dir(ctx.config.run_dir, args.name)
    path = directory / BOOT_LOG
    if not directory.is_dir():
        print(
            f"bhyve-reconciler: {args.name} has no boot log in {ctx.config.run_dir}: "
            "it never booted under this daemon",
            file=sys.stderr,
        )
        return EXIT_ERROR
    out = sys.stdout.buffer
    end = size_of(path)  # -f goes on from here: nothing is shown twice or missed
    for line in tail(path, args.lines, end=end):
        out.write(line)
    out.flush()
    if not args.follow:
        return EXIT_OK
    try:
        for data in follow(path, offset=end):
            out.write(data)
            out.flush()
    except KeyboardInterrupt:
        pass
    return EXIT_OK
