"""`bhyve-reconciler`: the command line. The only module that prints for people.

Each subcommand is a small function that wires config, specs and the host together and turns
results into lines and an exit status; the work itself lives in the modules it calls.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from reconciler.actions import Action
from reconciler.config import DEFAULT_CONFIG_PATH, DaemonConfig, parse_config
from reconciler.control import daemon_pid, send_command
from reconciler.errors import HostRefused, ReconcilerError, SpecError
from reconciler.facts import HostFacts
from reconciler.host.freebsd import FreeBSDHost, Outcome, execute_actions
from reconciler.host.guests import ShimGuestOps, recorded_guests
from reconciler.host.runner import SubprocessRunner
from reconciler.ledger import Ledger, load_ledger, save_ledger
from reconciler.plan import (
    guests_holding_taps,
    next_boot,
    plan_actions,
    plan_context,
    state_files,
)
from reconciler.spec import GuestSpec
from reconciler.specdir import ConfDir, ConfSnapshot
from reconciler.status import read_status, render_table, status_dict

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_PENDING = 2
SIM_PLAYGROUND = Path(".bhyve-sim")


@dataclass(frozen=True)
class Context:
    """What every subcommand starts from: the daemon config and which host to talk to."""

    config: DaemonConfig
    host_kind: str  # "freebsd", "simulated" or "none" (not on FreeBSD, nothing asked)
    sim_root: Path | None
    config_path: Path | None = None
    playground: bool = False  # --simulate without --config: everything under --sim-dir


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bhyve-reconciler",
        description="Declarative bhyve guests: one TOML file per guest, converged continuously.",
    )
    p.add_argument("--config", type=Path, help=f"daemon config (default {DEFAULT_CONFIG_PATH})")
    p.add_argument("--conf-dir", type=Path, help="directory of guest specs (overrides the config)")
    p.add_argument("--host", choices=("freebsd", "simulated"), help="which host to drive")
    p.add_argument(
        "--simulate",
        action="store_true",
        help="drive the simulated FreeBSD host (= --host simulated)",
    )
    p.add_argument(
        "--sim-dir",
        type=Path,
        help=f"the simulated host's playground without --config (default ./{SIM_PLAYGROUND})",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("validate", help="check every spec file; exit 1 on any error")
    c = sub.add_parser("commands", help="print the loader and bhyve command lines of a guest")
    c.add_argument("name")
    pl = sub.add_parser("plan", help="show what would change on this host, and why")
    pl.add_argument("--json", action="store_true")
    sub.add_parser("apply", help="make the host match conf.d once, then exit")
    r = sub.add_parser("run", help="the daemon: watch conf.d, converge, supervise guests")
    r.add_argument("--log-format", choices=("auto", "json", "console"), default="auto")
    st = sub.add_parser("status", help="one row per guest, from the running daemon's status file")
    st.add_argument("--json", action="store_true")
    for name, text in (
        ("start", "boot a powered-off, held or failed guest now"),
        ("stop", "stop a guest gracefully and hold it stopped"),
        ("restart", "stop a guest gracefully, then boot it"),
    ):
        op = sub.add_parser(name, help=text)
        op.add_argument("name")
        op.add_argument("--no-wait", action="store_true", help="return once the daemon accepted")
    co = sub.add_parser("console", help="connect to a guest's nmdm console with cu(1)")
    co.add_argument("name")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        ctx = load_context(args)
        handler = {
            "validate": cmd_validate,
            "commands": cmd_commands,
            "plan": cmd_plan,
            "apply": cmd_apply,
            "run": cmd_run,
            "status": cmd_status,
            "start": cmd_operator,
            "stop": cmd_operator,
            "restart": cmd_operator,
            "console": cmd_console,
        }[args.command]
        return handler(ctx, args)
    except ReconcilerError as exc:
        print(f"bhyve-reconciler: {exc}", file=sys.stderr)
        return EXIT_ERROR


def load_context(args: argparse.Namespace) -> Context:
    host_kind = args.host or ("simulated" if args.simulate else None)
    if args.simulate and args.host == "freebsd":
        raise HostRefused("--simulate and --host freebsd contradict each other")
    if host_kind is None:
        host_kind = "freebsd" if sys.platform.startswith("freebsd") else "none"
    config_path: Path | None = args.config
    if config_path is None and DEFAULT_CONFIG_PATH.exists() and host_kind != "simulated":
        config_path = DEFAULT_CONFIG_PATH
    if config_path is not None:
        config = read_config(config_path)
    elif host_kind == "simulated":
        config = playground_config(args.sim_dir or SIM_PLAYGROUND)
    else:
        config = DaemonConfig()
    if args.conf_dir is not None:
        config = config.with_conf_dir(args.conf_dir)
    elif config_path is None and host_kind != "freebsd" and Path("conf.d").is_dir():
        config = config.with_conf_dir(Path("conf.d"))
    sim_root = None
    if host_kind == "simulated":
        if config_path is None:
            sim_root = (args.sim_dir or SIM_PLAYGROUND).absolute() / "host"
        else:
            sim_root = args.sim_dir.absolute() if args.sim_dir else config.state_dir / "sim"
    return Context(
        config=config,
        host_kind=host_kind,
        sim_root=sim_root,
        config_path=config_path,
        playground=host_kind == "simulated" and config_path is None,
    )


def read_config(path: Path) -> DaemonConfig:
    try:
        text = path.read_text()
    except OSError as exc:
        raise SpecError(
            str(path), "(file)", f"cannot read the daemon config: {exc.strerror}"
        ) from exc
    config, problems = parse_config(text, file=str(path))
    errors = [p for p in problems if not p.warning]
    if errors:  # every problem at once, one per line, as validate reports specs
        raise ReconcilerError("the daemon config is invalid:\n" + "\n".join(map(str, errors)))
    return config


def playground_config(sim_dir: Path) -> DaemonConfig:
    """Without --config, --simulate keeps everything under one directory: the daemon's own
    directories live on the simulated host's file system, as they would on FreeBSD; the
    config puts igb0 in bridge0 so the example guests reproduce the Handbook's host."""
    host = sim_dir.absolute() / "host"
    return replace(
        DaemonConfig(),
        state_dir=host / "var/db/bhyve-reconciler",
        run_dir=host / "var/run/bhyve-reconciler",
        conf_dir=Path("conf.d").absolute(),
        bridges={"bridge0": ("igb0",)},
    )


def open_host(ctx: Context) -> FreeBSDHost:
    """The driver for this context; refuses a real host unless it is FreeBSD or asked for."""
    if ctx.host_kind == "none":
        raise HostRefused(
            "this is not FreeBSD: pass --simulate to use the simulated host, or --host freebsd "
            "to run the FreeBSD driver with the tools on PATH"
        )
    if ctx.host_kind == "simulated":
        from reconciler.sim import SimulatedHost

        assert ctx.sim_root is not None
        sim = SimulatedHost(ctx.sim_root)
        sim.setup()
        env = sim.env()
        return FreeBSDHost(SubprocessRunner(env), root=sim.root, vmm_dir=ctx.config.vmm_dir)
    return FreeBSDHost(SubprocessRunner(), vmm_dir=ctx.config.vmm_dir)


# -- validate ---------------------------------------------------------------------------------


def cmd_validate(ctx: Context, args: argparse.Namespace) -> int:
    root = ctx.sim_root if ctx.sim_root is not None else Path("/")
    snapshot = ConfDir(ctx.config.conf_dir, root=root).scan()
    by_file: dict[str, list[SpecError]] = {}
    for problem in snapshot.problems:
        by_file.setdefault(problem.file, []).append(problem)
    for file in sorted(set(snapshot.files) | set(by_file)):
        problems = by_file.get(file, [])
        for p in problems:
            print(format_problem(p))
        status = snapshot.files.get(file)
        if status is not None and not any(not p.warning for p in problems):
            print(f"{file}: valid (guest {status.guest})")
    if not snapshot.files:
        print(f"{ctx.config.conf_dir}: no guest specs (*.toml)")
    return EXIT_ERROR if any(not p.warning for p in snapshot.problems) else EXIT_OK


def format_problem(p: SpecError) -> str:
    return f"{p.file}: {p.key}: {'warning: ' if p.warning else ''}{p.message}"


# -- commands ---------------------------------------------------------------------------------


def cmd_commands(ctx: Context, args: argparse.Namespace) -> int:
    root = ctx.sim_root if ctx.sim_root is not None else Path("/")
    snapshot = ConfDir(ctx.config.conf_dir, root=root).scan()
    guest = snapshot.guests.get(args.name)
    if guest is None:
        for p in snapshot.problems:
            if not p.warning:
                print(f"{p.file}: {p.key}: {p.message}", file=sys.stderr)
        print(f"bhyve-reconciler: no valid guest named {args.name!r}", file=sys.stderr)
        return EXIT_ERROR
    ledger = load_ledger(ctx.config.state_dir)
    if ctx.host_kind == "none":
        host = FreeBSDHost(SubprocessRunner(), root=root, vmm_dir=ctx.config.vmm_dir)
        interfaces: frozenset[str] = frozenset()
    else:
        host = open_host(ctx)
        interfaces = frozenset(host.observe_interfaces())
    boot = next_boot(
        guest,
        desired=snapshot.guests,
        interfaces=interfaces,
        ledger=ledger,
        ctx=plan_context(ctx.config),
        first_disk_bootable=host.first_disk_bootable(guest),
    )
    if boot.loader is not None:
        print(shlex.join(boot.loader))
    print(shlex.join(boot.bhyve))
    return EXIT_OK


# -- plan and apply ---------------------------------------------------------------------------


@dataclass(frozen=True)
class OneShot:
    """What `plan` and `apply` start from: the host, the specs, the ledger and the plan."""

    host: FreeBSDHost
    snapshot: ConfSnapshot
    ledger: Ledger
    actions: list[Action]


def plan_once(ctx: Context) -> OneShot:
    host = open_host(ctx)
    snapshot = ConfDir(ctx.config.conf_dir, root=host.root).scan()
    report_problems(snapshot.problems)
    ledger = load_ledger(ctx.config.state_dir)
    pctx = plan_context(ctx.config)
    facts = host.observe(snapshot.guests, ledger, state_files=state_files(snapshot.guests, pctx))
    running = live_guests(ctx, host, facts, snapshot.guests, ledger)
    actions = plan_actions(snapshot.guests, facts, ledger, replace(pctx, running=running))
    return OneShot(host, snapshot, ledger, actions)


def cmd_plan(ctx: Context, args: argparse.Namespace) -> int:
    actions = plan_once(ctx).actions
    if args.json:
        print(json.dumps([a.as_dict() for a in actions], indent=2))
    elif not actions:
        print("converged: nothing to do")
    else:
        for action in actions:
            print(action.describe())
    return EXIT_PENDING if actions else EXIT_OK


def cmd_apply(ctx: Context, args: argparse.Namespace) -> int:
    once = plan_once(ctx)
    report = execute_actions(once.actions, once.host.apply, once.ledger, on_outcome=print_outcome)
    orders = {name: g.lifecycle.order for name, g in once.snapshot.guests.items()}
    save_ledger(ctx.config.state_dir, report.ledger.with_orders(orders))
    if not once.actions:
        print("converged: nothing to do")
    if report.failed:
        print(f"{len(report.failed)} action(s) failed or were skipped; the next apply retries them")
        return EXIT_ERROR
    return EXIT_OK


def live_guests(
    ctx: Context,
    host: FreeBSDHost,
    facts: HostFacts,
    desired: Mapping[str, GuestSpec],
    ledger: Ledger,
) -> frozenset[str]:
    """Guests whose bhyve (or loader) runs now, though this process supervises none: those the
    daemon's boot records show alive, and those whose VM exists while one of their taps is held
    open (started by vmrun.sh, say). Planning must not start them again nor destroy their VM."""
    live: set[str] = set()
    for name in recorded_guests(ctx.config.run_dir):
        ops = ShimGuestOps(
            name,
            runner=host.runner,
            run_dir=ctx.config.run_dir,
            vmm_dir=host.host_path(ctx.config.vmm_dir),
        )
        record = ops.record()
        pids = (record.shim_pid, record.loader_pid, record.bhyve_pid)
        if any(pid is not None and ops.alive(pid) for pid in pids):
            live.add(name)
    live.update(guests_holding_taps(desired, facts, ledger))
    return frozenset(live)


def print_outcome(outcome: Outcome) -> None:
    line = outcome.action.describe()
    if outcome.status in ("done", "unchanged"):
        print(line)
    elif outcome.status == "failed":
        err = outcome.error
        assert err is not None
        print(
            f"{line}: FAILED: {shlex.join(err.argv)}: exit status {err.status}: "
            f"{err.stderr.strip() or 'no output'}"
        )
    elif outcome.status == "skipped":
        print(f"{line}: skipped (waiting for {', '.join(outcome.waiting_for)} which failed)")
    else:
        print(f"{line}: pending (guests are started and stopped by `bhyve-reconciler run`)")


def report_problems(problems: Sequence[SpecError]) -> None:
    for p in problems:
        print(format_problem(p), file=sys.stderr)


# -- the daemon and its operator commands -----------------------------------------------------


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
    if args.json:
        print(json.dumps({"daemon_running": pid is not None, **status_dict(status)}, indent=2))
        return EXIT_OK
    if pid is None:
        print(f"(no daemon is running on {ctx.config.run_dir}: this is its last status)")
    print(render_table(status))
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
