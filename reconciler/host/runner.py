"""The `Runner` seam: the one place host commands are executed.

`run(argv)` waits for a short command and returns its `Result`; `spawn(argv)` starts a long-lived
process (a guest's boot shim) in its own session. No shell, ever, and a timeout on every wait.
What a command prints stays bytes (an interface description may hold any bytes, reference
§8.11): the parsers decode it, and `Result.error_text` never fails to.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from reconciler.errors import HostCommandError
from reconciler.facts import host_text

DEFAULT_TIMEOUT = 60.0


@dataclass(frozen=True)
class Result:
    argv: tuple[str, ...]
    status: int  # exit status; 128+N when killed by signal N; 124 on timeout (as timeout(1))
    stdout: bytes
    stderr: bytes

    @property
    def ok(self) -> bool:
        return self.status == 0

    @property
    def error_text(self) -> str:
        """stderr for a message or a marker test; bytes that are not UTF-8 are escaped."""
        return as_text(self.stderr)


class Runner(Protocol):
    def run(self, argv: Sequence[str], *, timeout: float = DEFAULT_TIMEOUT) -> Result: ...

    def spawn(
        self, argv: Sequence[str], *, output: Path | None = None
    ) -> subprocess.Popen[bytes]: ...


class SubprocessRunner:
    """Runs host tools found on `PATH` of `env` (the simulated host prepends its own bin/)."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self.env = dict(env) if env is not None else None
        self.commands_run = 0

    def run(self, argv: Sequence[str], *, timeout: float = DEFAULT_TIMEOUT) -> Result:
        args = tuple(argv)
        self.commands_run += 1
        try:
            done = subprocess.run(
                args,
                capture_output=True,
                timeout=timeout,
                env=self.env,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            return Result(args, 124, _bytes(exc.stdout), _bytes(exc.stderr) + b"timed out")
        except OSError as exc:
            # A missing tool is a failed command, reported like any other (127 as in sh).
            return Result(args, 127, b"", f"{args[0]}: {exc.strerror}".encode())
        status = done.returncode if done.returncode >= 0 else 128 - done.returncode
        return Result(args, status, done.stdout, done.stderr)

    def spawn(self, argv: Sequence[str], *, output: Path | None = None) -> subprocess.Popen[bytes]:
        out = open(output, "ab") if output is not None else subprocess.DEVNULL  # noqa: SIM115
        try:
            return subprocess.Popen(
                tuple(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
                close_fds=True,
            )
        finally:
            if output is not None and not isinstance(out, int):
                out.close()


def _bytes(data: str | bytes | None) -> bytes:
    if data is None:
        return b""
    return data if isinstance(data, bytes) else data.encode()


as_text = host_text


def command_error(result: Result) -> HostCommandError:
    """The error for a failed command: what it printed on stderr, else on stdout (bhyvectl
    prints `errno = N` there, reference §8.8)."""
    said = result.error_text if result.stderr.strip() else as_text(result.stdout)
    return HostCommandError(result.argv, result.status, said)


def host_env(path_prefix: Path | None = None) -> dict[str, str]:
    """The environment for host commands: rc.d's PATH, optionally with a tools dir first."""
    env = dict(os.environ)
    if path_prefix is not None:
        env["PATH"] = f"{path_prefix}{os.pathsep}{env.get('PATH', '')}"
    return env
