"""The exception tree of bhyve-reconciler.

    ReconcilerError          root: anything this package raises on purpose
    ├── SpecError            a guest spec or the daemon config is invalid (file, key, message)
    │   └── ConflictError    two spec files claim the same name, tap, disk or console
    ├── HostCommandError     a host command exited non-zero (argv, exit status, stderr)
    ├── HostRefused          the host cannot be touched from here (not FreeBSD, no --simulate)
    └── DaemonError          no daemon answers on run_dir, or a second one would start

Errors carry intent: `temporary` ones are retried on the next pass, the others are reported
and left for a person to fix.
"""

from __future__ import annotations

from collections.abc import Sequence


class ReconcilerError(Exception):
    """Root of every error bhyve-reconciler raises on purpose."""

    temporary = False


class SpecError(ReconcilerError):
    """One problem in one file, at one key: printed as `FILE: KEY: message`."""

    def __init__(self, file: str, key: str, message: str, *, warning: bool = False) -> None:
        self.file = file
        self.key = key
        self.message = message
        self.warning = warning
        super().__init__(f"{file}: {key}: {message}")


class ConflictError(SpecError):
    """A later-changed file claims something an earlier file already holds."""


class HostCommandError(ReconcilerError):
    """A host command exited non-zero; the next pass will try again."""

    temporary = True

    def __init__(self, argv: Sequence[str], status: int, stderr: str) -> None:
        self.argv = tuple(argv)
        self.status = status
        self.stderr = stderr
        detail = stderr.strip().splitlines()[-1] if stderr.strip() else "no output"
        super().__init__(f"{' '.join(self.argv)}: exit status {status}: {detail}")


class HostRefused(ReconcilerError):
    """This process may not touch the host it would touch."""


class DaemonError(ReconcilerError):
    """No daemon answers on run_dir, or a second one would start."""
