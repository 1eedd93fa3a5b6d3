"""Run `bhyve-reconciler ARGS` as a child process without paying its start-up each time.

A fresh `python -m reconciler` spends some 170 ms of CPU before it parses its arguments (the
interpreter, structlog, and the package's ~140 frozen dataclasses, each built by exec() on
Python 3.11); the suite runs the CLI some 170 times. Here each command runs in a process forked
from a server that imported `reconciler.cli` once (multiprocessing's forkserver): a real child
process with its own exit status, stdout, stderr, working directory and environment, that runs
`main()` as `python -m reconciler` does, but starts in a few milliseconds.

The daemon (`run` started by a test) stays a `subprocess.Popen` of the real interpreter: tests
signal it, wait for it and watch it outlive its parent. tests/readme and the start-up tests run
the installed script itself.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from multiprocessing.context import ForkServerContext
from pathlib import Path

import reconciler
from reconciler.cli import main

# sys.argv[0] of `python -m reconciler`.
MAIN = str(Path(reconciler.__file__ or "reconciler").with_name("__main__.py"))
_CONTEXT: ForkServerContext | None = None


def _context() -> ForkServerContext:
    global _CONTEXT
    if _CONTEXT is None:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["reconciler.cli", "cli_runner"])
        _CONTEXT = context
    return _CONTEXT


def _child(argv: list[str], cwd: str, env: dict[str, str], out: str, err: str) -> None:
    """In the forked child: become `python -m reconciler ARGV` in `cwd` with `env`."""
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    for fd, path in ((1, out), (2, err)):
        target = os.open(path, os.O_WRONLY | os.O_TRUNC)
        os.dup2(target, fd)
        os.close(target)
    sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
    sys.argv = [MAIN, *argv]
    # As `python -m reconciler`: sys.exit(main()). multiprocessing's bootstrap turns the
    # SystemExit (or an uncaught exception: traceback, 1) into the exit status, after joining
    # the threads that are not daemons and flushing the streams, as the interpreter would.
    sys.exit(main(argv))


def run_cli(
    argv: Sequence[str],
    *,
    cwd: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> subprocess.CompletedProcess[str]:
    """`subprocess.run([python, -m, reconciler, *argv], capture_output=True, text=True)`."""
    with tempfile.TemporaryDirectory(prefix="cli-") as tmp:
        out, err = os.path.join(tmp, "out"), os.path.join(tmp, "err")
        for path in (out, err):
            open(path, "wb").close()
        process = _context().Process(
            target=_child,
            args=(
                list(argv),
                str(cwd if cwd is not None else os.getcwd()),
                dict(os.environ if env is None else env),
                out,
                err,
            ),
        )
        process.start()
        process.join(timeout)
        if process.exitcode is None:
            process.kill()
            process.join()
            raise subprocess.TimeoutExpired([sys.executable, "-m", "reconciler", *argv], timeout)
        return subprocess.CompletedProcess(
            [sys.executable, "-m", "reconciler", *argv],
            process.exitcode,
            Path(out).read_text(),
            Path(err).read_text(),
        )
