"""`run`, `start`/`stop`/`restart` and `console`: the daemon and what talks to it."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable

from reconciler.cli.context import Context, open_host, simulated_host
from reconciler.cli.inspect import EXIT_ERROR, EXIT_OK
from reconciler.cli.parser import Commands, name_argument
from reconciler.cli.progress import Command, Progress
from reconciler.control import send_command
from reconciler.host.freebsd import FreeBSDHost
from reconciler.log import LEVELS
from reconciler.specdir import ConfDir
from reconciler.status import GuestStatus, read_status

POLL = 0.2  # seconds between looks at status.json while a command waits
PATIENCE = 30.0  # seconds past a stop's last deadline before giving up on the daemon
PLAYGROUND_IMAGE_SIZE = 64 << 20  # a stand-in raw cloud image: sparse, a boot sector


def register(commands: Commands) -> None:
    r = commands.add(
        "run",
        "the daemon: watch conf_dir, converge the host, supervise every guest",
        cmd_run,
        exits=((EXIT_OK, "stopped gracefully (SIGTERM, SIGINT) or detached (SIGUSR1)"),
               (EXIT_ERROR, "could not start (another daemon runs, a directory is unsafe)")),
        details=(
            "SIGTERM or Ctrl-C stops every guest gracefully, in parallel, in reverse `order`, "
            "then exits. SIGHUP re-reads the daemon config. SIGUSR1 exits at once and leaves "
            "every guest running, for an upgrade: the next daemon adopts them."
        ),
    )  # fmt: skip
    r.add_argument(
        "--log-format",
        choices=("auto", "json", "console"),
        default="auto",
        help="log lines as JSON (for syslog and tools) or for people; auto: console on a "
        "terminal, else JSON",
    )
    r.add_argument(
        "--log-level",
        choices=LEVELS,
        default="info",
        help="the least severe events logged (default info; debug shows the watcher's events)",
    )
    for name, text, goal in (
        ("start", "boot a powered-off, held or failed guest now", "it runs"),
        ("stop", "stop a guest gracefully (ACPI, then forced) and hold it stopped", "it is off"),
        ("restart", "stop a guest gracefully, then boot it again", "it runs again"),
    ):
        op = commands.add(
            name,
            text,
            cmd_operator,
            exits=(
                (EXIT_OK, f"done: {goal} (or, with --no-wait, the daemon accepted)"),
                (EXIT_ERROR, "refused, no daemon runs, or it failed (the reason is printed)"),
            ),
            details="While it waits it prints the guest's phase and the seconds left.",
        )
        name_argument(op)
        op.add_argument(
            "--no-wait", action="store_true", help="return once the daemon accepted the command"
        )
    co = commands.add(
        "console",
        "connect to a guest's serial console (nmdm) with cu(1); ~. leaves",
        cmd_console,
        exits=((EXIT_OK, "cu's own status: cu replaces this command"),
               (EXIT_ERROR, "no such guest, its console is not nmdm, or it is not there")),
    )  # fmt: skip
    name_argument(co)


def cmd_run(ctx: Context, args: argparse.Namespace) -> int:
    from reconciler.daemon import Daemon
    from reconciler.log import configure_logging

    configure_logging(args.log_format, args.log_level)
    host = open_host(ctx)
    if ctx.playground:
        seed_install_media(ctx, host)
    return Daemon(ctx.config, host, config_path=ctx.config_path).run()


def seed_install_media(ctx: Context, host: FreeBSDHost) -> None:
    """The playground's simulated host has the example guests' install media and the raw
    cloud images their disks are copied from (as though downloaded and converted), so they
    boot. An image is sparse, with a boot sector: a disk copied from it boots without media."""
    snapshot = ConfDir(ctx.config.conf_dir, root=host.root).scan()
    for guest in snapshot.guests.values():
        if guest.install is not None:
            iso = host.host_path(guest.install.iso)
            if not iso.exists():
                iso.parent.mkdir(parents=True, exist_ok=True)
                iso.write_bytes(b"simulated install media\n")
        for disk in guest.disks:
            if disk.path is not None and disk.source is not None:
                image = host.host_path(disk.source)
                if not image.exists():
                    image.parent.mkdir(parents=True, exist_ok=True)
                    with open(image, "wb") as f:
                        f.write(bytes(510) + b"\x55\xaa")  # the MBR signature
                        f.truncate(PLAYGROUND_IMAGE_SIZE)


def guest_row(ctx: Context, name: str) -> GuestStatus | None:
    status = read_status(ctx.config.run_dir)
    return next((g for g in status.guests if g.name == name), None) if status else None


def cmd_operator(ctx: Context, args: argparse.Namespace) -> int:
    before = guest_row(ctx, args.name)
    ok, message = send_command(ctx.config.run_dir, args.command, args.name)
    if not ok:
        print(f"bhyve-reconciler: {args.command} {args.name}: {message}", file=sys.stderr)
        return EXIT_ERROR
    print(message, flush=True)
    if args.no_wait:
        return EXIT_OK
    command: Command = args.command
    progress = Progress(args.name, command, old_pid=before.pid if before else None)
    return wait_for(ctx, progress, rows=lambda: guest_row(ctx, args.name))


def wait_for(
    ctx: Context,
    progress: Progress,
    *,
    rows: Callable[[], GuestStatus | None],
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Print the guest's progress until the command is done; its exit status."""
    deadline = clock() + ctx.config.stop_timeout + PATIENCE
    row = None
    while clock() < deadline:
        row = rows()
        now = clock()
        seen = progress.see(row, now)
        for line in seen.lines:
            print(line, flush=True)
        if seen.done:
            return EXIT_OK if seen.ok else EXIT_ERROR
        if row is not None and row.stop_deadline is not None:
            grace = ctx.config.timings.timings().kill_grace
            deadline = max(deadline, row.stop_deadline + 2 * grace + PATIENCE)
        sleep(POLL)
    state = row.state if row is not None else "unknown"
    print(f"bhyve-reconciler: {progress.name}: still {state} after waiting", file=sys.stderr)
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
    env = dict(os.environ)
    if ctx.host_kind == "simulated":
        sim = simulated_host(ctx)
        try:
            peer = str(sim.open_console(args.name, peer))
        except LookupError as exc:
            print(f"bhyve-reconciler: {exc}", file=sys.stderr)
            return EXIT_ERROR
        env = sim.env()
    try:
        os.execvpe("cu", ["cu", "-l", peer], env)
    except OSError as exc:
        print(f"bhyve-reconciler: cannot run cu: {exc.strerror}", file=sys.stderr)
    return EXIT_ERROR
