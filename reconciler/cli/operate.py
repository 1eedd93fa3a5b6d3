"""`run`, `status`, `start`/`stop`/`restart` and `console`: the daemon and what talks to it."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace

from reconciler.cli.context import Context, open_host
from reconciler.cli.inspect import EXIT_ERROR, EXIT_OK
from reconciler.control import daemon_pid, send_command
from reconciler.host.freebsd import FreeBSDHost
from reconciler.specdir import ConfDir
from reconciler.status import read_status, render_table, status_json


def cmd_run(ctx: Context, args: argparse.Namespace) -> int:
    from reconciler.daemon import Daemon
    from reconciler.log import configure_logging

    configure_logging(args.log_format)
    host = open_host(ctx)
    if ctx.playground:
        seed_install_media(ctx, host)
    return Daemon(ctx.config, host, config_path=ctx.config_path).run()


def seed_install_media(ctx: Context, host: FreeBSDHost) -> None:
    """The playground's simulated host has the example guests' install media, so they boot."""
    snapshot = ConfDir(ctx.config.conf_dir, root=host.root).scan()
    for guest in snapshot.guests.values():
        if guest.install is not None:
            iso = host.host_path(guest.install.iso)
            if not iso.exists():
                iso.parent.mkdir(parents=True, exist_ok=True)
                iso.write_bytes(b"simulated install media\n")


def cmd_status(ctx: Context, args: argparse.Namespace) -> int:
    status = read_status(ctx.config.run_dir)
    pid = daemon_pid(ctx.config.run_dir)
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
        print(json.dumps({"daemon_running": pid is not None, **status_json(status)}, indent=2))
        return EXIT_OK
    if pid is None:
        print(f"(no daemon is running on {ctx.config.run_dir}: this is its last status)")
    print(render_table(status))
    if away and not args.all:
        print(f"({away} guest(s) placed on other hosts: status --all lists them)")
    return EXIT_OK


def cmd_operator(ctx: Context, args: argparse.Namespace) -> int:
    ok, message = send_command(ctx.config.run_dir, args.command, args.name)
    if not ok:
        print(f"bhyve-reconciler: {args.command} {args.name}: {message}", file=sys.stderr)
        return EXIT_ERROR
    print(message)
    if args.no_wait:
        return EXIT_OK
    goal = {"start": {"running"}, "restart": {"running"}, "stop": {"held", "stopped"}}
    wanted = goal[args.command]
    deadline = time.monotonic() + ctx.config.stop_timeout + 30
    state = None
    while time.monotonic() < deadline:
        status = read_status(ctx.config.run_dir)
        row = next((g for g in status.guests if g.name == args.name), None) if status else None
        state = row.state if row else None
        if state in wanted:
            print(f"{args.name}: {state}")
            return EXIT_OK
        if state in ("error", "crash-loop", "powered-off") and args.command != "stop":
            print(f"bhyve-reconciler: {args.name}: {state}", file=sys.stderr)
            return EXIT_ERROR
        time.sleep(0.2)
    print(f"bhyve-reconciler: {args.name}: still {state} after waiting", file=sys.stderr)
    return EXIT_ERROR


def cmd_console(ctx: Context, args: argparse.Namespace) -> int:
    snapshot = ConfDir(ctx.config.conf_dir).scan()
    guest = snapshot.guests.get(args.name)
    if guest is None:
        print(f"bhyve-reconciler: no valid guest named {args.name!r}", file=sys.stderr)
        return EXIT_ERROR
    peer = guest.console_peer
    if peer is None:
        print(
            f"bhyve-reconciler: {args.name}'s console {guest.console_device} is not an nmdm "
            "device: connect to it directly",
            file=sys.stderr,
        )
        return EXIT_ERROR
    try:
        os.execvp("cu", ["cu", "-l", peer])
    except OSError as exc:
        print(f"bhyve-reconciler: cannot run cu: {exc.strerror}", file=sys.stderr)
    return EXIT_ERROR
