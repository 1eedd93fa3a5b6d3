"""The seam between a guest's supervisor and the OS: what one boot runs, what its shim
recorded, and every operation on the guest's processes and VM.

Protocols and plain records only; `reconciler/host/guests.py` is the real implementation,
tests/supervise has a fake one. Nothing here runs anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from reconciler.errors import ReconcilerError
from reconciler.policy import ExitStatus
from reconciler.spec import GuestSpec


class CommandRefused(ReconcilerError):
    """An operator command that the guest's file or state does not allow."""


class BootPlan(Protocol):
    """What one boot runs: `reconciler.bhyve.BootCommands` has this shape."""

    @property
    def loader(self) -> tuple[str, ...] | None: ...

    @property
    def bhyve(self) -> tuple[str, ...]: ...

    @property
    def files(self) -> tuple[tuple[str, str], ...]: ...


@dataclass(frozen=True)
class BootRecord:
    """What the shim recorded for the guest's last boot, plus the supervisor's own note."""

    shim_pid: int | None = None
    loader_pid: int | None = None
    bhyve_pid: int | None = None
    exit: ExitStatus | None = None
    outcome: str | None = None  # the supervisor's note: held, stopped, powered-off, ...
    bhyve_age: float | None = None  # seconds since bhyve started, for an adopted guest's uptime


class GuestOps(Protocol):
    """Every OS operation on one guest's processes and VM."""

    def spawn(self, boot: BootPlan, spec: GuestSpec) -> int:
        """Write the boot's files, clear the last record, note `spec` as the spec this boot
        runs, start the shim; its pid."""
        ...

    def record(self) -> BootRecord: ...

    def booted(self) -> GuestSpec | None:
        """The spec the live boot was started with, as `spawn` noted it; None if unknown."""
        ...

    def trusted(self, rec: BootRecord) -> BootRecord:
        """`rec` with every pid that is not shown to be this guest's shim, loader or bhyve
        dropped (a stale record's pid may belong to an unrelated process now)."""
        ...

    def watch(self, pid: int) -> None:
        """Have the daemon poll this supervisor once `pid` exits."""
        ...

    def alive(self, pid: int) -> bool: ...

    def signal(self, pid: int, sig: int) -> bool: ...

    def signal_group(self, pgid: int, sig: int) -> bool: ...

    def vm_exists(self) -> bool: ...

    def boot_output(self) -> bytes:
        """What the last boot's loader and bhyve printed (its part of the boot's log, the end
        of it when long): what an exit is judged by."""
        ...

    def destroy(self) -> None:
        """`bhyvectl --vm=NAME --destroy`; raises `HostCommandError`."""
        ...

    def force_poweroff(self) -> None:
        """`bhyvectl --vm=NAME --force-poweroff`; raises `HostCommandError`."""
        ...

    def set_outcome(self, outcome: str) -> None: ...

    def forget(self) -> None:
        """Remove the guest's record: it is gone for good."""
        ...


class Logger(Protocol):
    def info(self, event: str, **fields: object) -> object: ...

    def warning(self, event: str, **fields: object) -> object: ...

    def error(self, event: str, **fields: object) -> object: ...
