"""What `start`, `stop` and `restart` print while they wait for the daemon, from the guest's
status rows as they come.

Pure: each `Progress.see(row, now)` returns the lines to print now and whether the command is
over (and how). A line is printed when the guest's phase changes and, within a long phase, every
`every` seconds, with the seconds left before the next step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from reconciler.status import GuestStatus
from reconciler.statusview import state_text, stop_progress, why

Command = Literal["start", "stop", "restart"]
_FAILED = ("error", "crash-loop", "powered-off")


@dataclass(frozen=True)
class Seen:
    lines: tuple[str, ...]
    done: bool = False
    ok: bool = True


class Progress:
    def __init__(
        self, name: str, command: Command, *, old_pid: int | None = None, every: float = 10.0
    ) -> None:
        self.name = name
        self.command = command
        self.every = every
        self._old_pid = old_pid  # restart: the bhyve that must be replaced
        self._phase: str | None = None
        self._printed_at = 0.0
        self._left_stop = False  # restart: the stop is over
        self._timeout: float | None = None

    def see(self, row: GuestStatus | None, now: float) -> Seen:
        if row is None:
            return Seen((f"{self.name}: the daemon no longer reports it",), done=True, ok=False)
        if row.state == "stopping":
            self._timeout = row.stop_timeout or self._timeout
            return Seen(self._report(f"stopping:{row.stop_phase}", now, f"stopping: "
                                     f"{stop_progress(row, now)}"))  # fmt: skip
        if self.command == "stop":
            return self._stopped(row, now)
        return self._booting(row, now)

    def _report(self, phase: str, now: float, text: str) -> tuple[str, ...]:
        if phase != self._phase or now - self._printed_at >= self.every:
            self._phase = phase
            self._printed_at = now
            return (f"{self.name}: {text}",)
        return ()

    def _stopped(self, row: GuestStatus, now: float) -> Seen:
        if row.state in ("held", "stopped", "powered-off", "error"):
            how = self._how(row)
            state = row.state if how else state_text(row)
            return Seen((f"{self.name}: {state}{how}",), done=True)
        return Seen(self._report(row.state, now, row.state))

    def _how(self, row: GuestStatus) -> str:
        if self._phase is None and row.last_stop is None:
            return ""
        timeout = f" within {self._timeout:g}s" if self._timeout else ""
        return {
            "acpi": " (it shut down on ACPI)",
            "loader": " (its loader quit)",
            "forced-poweroff": f" (forced power-off: no ACPI shutdown{timeout})",
            "killed": " (killed: it outlived the forced power-off)",
        }.get(row.last_stop or "", "")

    def _booting(self, row: GuestStatus, now: float) -> Seen:
        if row.state == "running" and (self.command == "start" or row.pid != self._old_pid):
            return Seen((f"{self.name}: running (pid {row.pid})",), done=True)
        if row.state in _FAILED and (self.command == "start" or self._left_stop):
            return Seen((f"{self.name}: {state_text(row)}: {why(row, now)}",), done=True, ok=False)
        if row.state == "running":
            return Seen(())  # still the bhyve that is to be replaced: it has not seen it yet
        if self._phase is not None:
            self._left_stop = True
        return Seen(self._report(row.state, now, row.state))
