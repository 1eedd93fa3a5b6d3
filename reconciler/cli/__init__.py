"""`bhyve-reconciler`: the command line. The only package that prints for people.

`main` parses the command line and hands the subcommand to the module that registered it:
`inspect` (validate, commands, plan, apply, schema), `operate` (run, start, stop, restart,
console) and `observe` (status, logs). A new module adds its commands with a
`register(commands)` function listed in `REGISTRARS`. Global options may come before or after
the subcommand.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from reconciler.cli import importer, inspect, new, observe, operate
from reconciler.cli.context import load_context
from reconciler.cli.inspect import EXIT_ERROR
from reconciler.cli.parser import Commands, Handler, base_parser
from reconciler.errors import ReconcilerError

# In the order `--help` lists them.
REGISTRARS: tuple[Callable[[Commands], None], ...] = (
    inspect.register,
    operate.register,
    observe.register,
    importer.register,
    new.register,
)


def build_parser() -> argparse.ArgumentParser:
    parser, commands = base_parser()
    for register in REGISTRARS:
        register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        handler: Handler = args.handler
        return handler(load_context(args), args)
    except ReconcilerError as exc:
        print(f"bhyve-reconciler: {exc}", file=sys.stderr)
        return EXIT_ERROR
