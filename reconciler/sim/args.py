"""Command-line parsing shared by the simulated tools: POSIX getopt(3) and the usage error.

Owns only parsing; each tool decides what it prints and which status a bad option earns (they
differ: bhyveload and bhyve exit 1 from usage(), errx(EX_USAGE) is 64, zfs exits 2).
"""

from __future__ import annotations


class UsageError(Exception):
    """A bad option, with getopt(3)'s own wording ("illegal option -- x")."""


def getopt(args: list[str], spec: str) -> tuple[list[tuple[str, str]], list[str]]:
    """POSIX getopt: `spec` as in C (letters, ':' after those taking a value)."""
    options: list[tuple[str, str]] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            return options, args[i + 1 :]
        if not arg.startswith("-") or arg == "-":
            break
        j = 1
        while j < len(arg):
            letter = arg[j]
            where = spec.find(letter)
            if where < 0 or letter == ":":
                raise UsageError(f"illegal option -- {letter}")
            if spec[where + 1 : where + 2] == ":":
                value = arg[j + 1 :]
                if not value:
                    i += 1
                    if i >= len(args):
                        raise UsageError(f"option requires an argument -- {letter}")
                    value = args[i]
                options.append((letter, value))
                break
            options.append((letter, ""))
            j += 1
        i += 1
    return options, args[i:]
