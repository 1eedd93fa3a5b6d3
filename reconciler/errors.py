"""The exception tree of bhyve-reconciler.

    ReconcilerError          root: anything this package raises on purpose
    ├── SpecError            a guest spec or the daemon config is invalid (file, key, message)
    ├── SpecErrors           every problem of the daemon config at once
    │   └── ConflictError    two spec files claim the same name, tap, disk or console
    ├── HostCommandError     a host command exited non-zero (argv, exit status, stderr)
    ├── NotReady             a guest cannot boot yet (a disk not there yet): it waits, no backoff
    ├── HostRefused          the host cannot be touched from here (not FreeBSD, no --simulate)
    ├── StateError           a file the daemon keeps (ledger, accepted specs) is damaged or newer
    └── DaemonError          no daemon answers on run_dir, or a second one would start

A `HostCommandError` is retried by the next pass; the others are reported and left for a person
to fix.
"""

from __future__ import annotations

from collections.abc import Sequence


class ReconcilerError(Exception):
    """Root of every error bhyve-reconciler raises on purpose."""


class SpecError(ReconcilerError):
    """One problem in one file, at one key: printed as `FILE: KEY: message`."""

    def __init__(self, file: str, key: str, message: str, *, warning: bool = False) -> None:
        self.file = file
        self.key = key
        self.message = message
        self.warning = warning
        super().__init__(f"{file}: {key}: {message}")


class SpecErrors(ReconcilerError):
    """Every problem of one file at once (the daemon config): one `FILE: KEY: message` line
    each."""

    def __init__(self, what: str, errors: Sequence[SpecError]) -> None:
        self.errors = tuple(errors)
        super().__init__(f"{what} is invalid:\n" + "\n".join(map(str, self.errors)))


class ConflictError(SpecError):
    """A later-changed file claims something an earlier file already holds."""


class HostCommandError(ReconcilerError):
    """A host command exited non-zero; the next pass will try again."""

    def __init__(self, argv: Sequence[str], status: int, stderr: str) -> None:
        self.argv = tuple(argv)
        self.status = status
        self.stderr = stderr
        detail = stderr.strip().splitlines()[-1] if stderr.strip() else "no output"
        super().__init__(f"{' '.join(self.argv)}: exit status {status}: {detail}")


class NotReady(ReconcilerError):
    """A guest cannot boot yet for a reason the next pass may remove (its disk is not created
    yet, its image has not arrived): it waits without crash backoff."""


class HostRefused(ReconcilerError):
    """This process may not touch the host it would touch."""


class StateError(ReconcilerError):
    """One of the daemon's own files cannot be trusted: one line with the file, what is wrong
    with it, and how to recover."""

    def __init__(self, path: object, problem: str, recover: str) -> None:
        self.path = str(path)
        self.problem = problem
        self.recover = recover
        super().__init__(f"{self.path}: {problem}; to recover, {recover}")


class DaemonError(ReconcilerError):
    """No daemon answers on run_dir, or a second one would start."""
