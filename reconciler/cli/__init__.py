"""`bhyve-reconciler`: the command line. The only package that prints for people.

`main` parses the command line and hands the subcommand to its module: `inspect` (validate,
commands, plan, apply) and `operate` (run, status, start, stop, restart, console). Global
options may come before or after the subcommand.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from reconciler.cli.context import SIM_PLAYGROUND, Context, load_context
from reconciler.cli.inspect import (
    EXIT_ERROR,
    cmd_apply,
    cmd_commands,
    cmd_plan,
    cmd_validate,
)
from reconciler.cli.operate import cmd_console, cmd_operator, cmd_run, cmd_status
from reconciler.config import DEFAULT_CONFIG_PATH
from reconciler.errors import ReconcilerError

Handler = Callable[[Context, argparse.Namespace], int]


def _global_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """The options every subcommand takes, before or after it: on a subcommand they default
    to 'not given', so they never undo what was given before it."""

    def default(value: object) -> object:
        return value if top else argparse.SUPPRESS

    group = parser.add_argument_group("global options")
    group.add_argument(
        "--config",
        type=Path,
        default=default(None),
        help=f"the daemon config (default {DEFAULT_CONFIG_PATH})",
    )
    group.add_argument(
        "--conf-dir",
        type=Path,
        default=default(None),
        help="the directory of guest specs (overrides the config's conf_dir)",
    )
    group.add_argument(
        "--host",
        choices=("freebsd", "simulated"),
        default=default(None),
        help="which host to drive (default: this one on FreeBSD)",
    )
    group.add_argument(
        "--simulate",
        action="store_true",
        default=default(False),
        help="drive the simulated FreeBSD host (= --host simulated)",
    )
    group.add_argument(
        "--sim-dir",
        type=Path,
        default=default(None),
        help=f"the simulated host's playground without --config (default ./{SIM_PLAYGROUND})",
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bhyve-reconciler",
        description="Declarative bhyve guests: one TOML file per guest, converged continuously.",
    )
    _global_options(p, top=True)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, text: str, handler: Handler) -> argparse.ArgumentParser:
        parser = sub.add_parser(name, help=text, description=text)
        _global_options(parser, top=False)
        parser.set_defaults(handler=handler)
        return parser

    command("validate", "check every spec file; exit 1 on any error", cmd_validate)
    c = command("commands", "print the loader and bhyve command lines of a guest", cmd_commands)
    c.add_argument("name")
    pl = command("plan", "show what would change on this host, and why", cmd_plan)
    pl.add_argument("--json", action="store_true")
    command("apply", "make the host match conf.d once, then exit", cmd_apply)
    r = command("run", "the daemon: watch conf.d, converge, supervise guests", cmd_run)
    r.add_argument("--log-format", choices=("auto", "json", "console"), default="auto")
    st = command("status", "one row per guest, from the running daemon's status file", cmd_status)
    st.add_argument("--json", action="store_true")
    st.add_argument("--all", action="store_true", help="also the guests placed on other hosts")
    for name, text in (
        ("start", "boot a powered-off, held or failed guest now"),
        ("stop", "stop a guest gracefully and hold it stopped"),
        ("restart", "stop a guest gracefully, then boot it"),
    ):
        op = command(name, text, cmd_operator)
        op.add_argument("name")
        op.add_argument("--no-wait", action="store_true", help="return once the daemon accepted")
    co = command("console", "connect to a guest's nmdm console with cu(1)", cmd_console)
    co.add_argument("name")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        handler: Handler = args.handler
        return handler(load_context(args), args)
    except ReconcilerError as exc:
        print(f"bhyve-reconciler: {exc}", file=sys.stderr)
        return EXIT_ERROR
