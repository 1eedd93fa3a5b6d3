"""Run `bhyve-reconciler ARGS` as a child process without paying its start-up each time.

A fresh `python -m reconciler` spends some 170 ms of CPU before it parses its arguments (the
interpreter, structlog, and the package's ~140 frozen dataclasses, each built by exec() on
Python 3.11); the suite runs the CLI some 170 times. Here each command runs in a process forked
from a server that imported `reconciler.cli` once (multiprocessing's forkserver): a real child
process with its own exit status, stdout, stderr, working directory and environment, that runs
`main()` as `python -m reconciler` does, but starts in a few milliseconds.

`start_daemon` starts `run` the same way and hands back a `Forked`, which answers as much of
`subprocess.Popen` as the tests use (pid, poll, wait, send_signal, kill, returncode): the
daemon is a real process that tests signal, kill and watch its guests outlive. Tests of what
only a fresh interpreter shows (its start-up imports, its streams closed under it) start it
with Popen themselves; tests/readme runs the installed script.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from multiprocessing.context import ForkServerContext
from multiprocessing.process import BaseProcess
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


def _child(
    argv: list[str], cwd: str, env: dict[str, str], out: str, err: str, new_session: bool = False
) -> None:
    """In the forked child: become `python -m reconciler ARGV` in `cwd` with `env`, its stdout
    and stderr written to the files `out` and `err` (which may be the same)."""
    if new_session:
        os.setsid()  # as Popen(start_new_session=True)
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    for fd, path in ((1, out), (2, err)):
        target = os.open(path, os.O_WRONLY | os.O_APPEND)
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


class Forked:
    """A process started from the forkserver, seen through the part of Popen the tests use.
    Its exit status comes from the server that reaped it (multiprocessing's sentinel)."""

    def __init__(self, process: BaseProcess, argv: list[str]) -> None:
        self._process = process
        self.args = argv
        self.pid: int = process.pid or 0

    @property
    def returncode(self) -> int | None:
        return self._process.exitcode

    def poll(self) -> int | None:
        return self._process.exitcode

    def wait(self, timeout: float | None = None) -> int:
        self._process.join(timeout)
        code = self._process.exitcode
        if code is None:
            raise subprocess.TimeoutExpired(self.args, timeout or 0.0)
        return code

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:  # as Popen: never a pid that may have been reused
            os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def start_daemon(argv: Sequence[str], log: Path) -> Forked:
    """`Popen([python, -m, reconciler, *argv], stdout=log, stderr=STDOUT,
    start_new_session=True)`, with `log` created empty."""
    log.write_bytes(b"")
    process = _context().Process(
        target=_child,
        args=(list(argv), os.getcwd(), dict(os.environ), str(log), str(log), True),
    )
    process.start()
    return Forked(process, [sys.executable, "-m", "reconciler", *argv])
