"""The command line's shape: global options, `--version`, and a `Commands` registry that each
subcommand module adds its commands to, each with a summary, help for every option and its
exit statuses.

A module registers its commands with a `register(commands: Commands)` function, listed in
`cli/__init__.py`; nothing here knows the commands themselves.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from reconciler import __version__
from reconciler.cli.context import HOST_ENV, SIM_PLAYGROUND, Context
from reconciler.config import DEFAULT_CONFIG_PATH

Handler = Callable[[Context, argparse.Namespace], int]
ExitCodes = Sequence[tuple[int, str]]

PROG = "bhyve-reconciler"
USAGE_ERROR = (2, "the command line is wrong (usage error)")


def program_version() -> str:
    # importlib.metadata is imported only for --version: it costs every other start ~25 ms.
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("bhyve-reconciler")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return __version__


class VersionAction(argparse.Action):
    """`--version`, as argparse's own, but the version is looked up only when asked for."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        kwargs.setdefault("help", "show program's version number and exit")
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> NoReturn:
        print(f"{parser.prog} {program_version()}")  # on stdout, as argparse prints it
        parser.exit()


def global_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """The options every subcommand takes, before or after it: on a subcommand they default
    to 'not given', so they never undo what was given before it."""

    def default(value: object) -> object:
        return value if top else argparse.SUPPRESS

    group = parser.add_argument_group("global options (before or after the command)")
    group.add_argument(
        "--config",
        type=Path,
        default=default(None),
        metavar="FILE",
        help=f"the daemon config (default {DEFAULT_CONFIG_PATH}, when it exists)",
    )
    group.add_argument(
        "--conf-dir",
        type=Path,
        default=default(None),
        metavar="DIR",
        help="the directory of guest specs (overrides the config's conf_dir)",
    )
    group.add_argument(
        "--host",
        choices=("freebsd", "simulated"),
        default=default(None),
        help=f"which host to drive (default: ${HOST_ENV}, else this one on FreeBSD)",
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
        metavar="DIR",
        help=f"the simulated host's directory (default ./{SIM_PLAYGROUND} without --config)",
    )


def exit_epilog(exits: ExitCodes) -> str:
    lines = ["exit status:"]
    lines += [f"  {code}  {meaning}" for code, meaning in (*exits, USAGE_ERROR)]
    return "\n".join(lines)


class Commands:
    """The subcommands, as modules register them."""

    def __init__(self, sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
        self._sub = sub

    def add(
        self,
        name: str,
        summary: str,
        handler: Handler,
        *,
        exits: ExitCodes,
        details: str = "",
    ) -> argparse.ArgumentParser:
        """A subcommand: `summary` is its one line in `--help`, `details` more for its own
        help, `exits` its exit statuses (a usage error's 2 is added)."""
        parser = self._sub.add_parser(
            name,
            help=summary,
            description=summary + (f"\n\n{details}" if details else ""),
            epilog=exit_epilog(exits),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        global_options(parser, top=False)
        parser.set_defaults(handler=handler)
        return parser


def base_parser() -> tuple[argparse.ArgumentParser, Commands]:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Declarative bhyve guests: one TOML file per guest in conf.d/, a daemon that makes "
            "the host match them and supervises the guests."
        ),
        epilog=(
            "Each command's own --help lists its exit statuses. Off FreeBSD, a command that "
            "touches the host needs --simulate (or --host freebsd)."
        ),
    )
    parser.add_argument("--version", action=VersionAction)
    global_options(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    return parser, Commands(sub)


def json_option(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--json", action="store_true", help=f"print {what} as JSON")


def name_argument(parser: argparse.ArgumentParser, help_text: str = "the guest's name") -> None:
    parser.add_argument("name", metavar="NAME", help=help_text)
