"""Restart policy: what a boot's exit status means, what to do about it, and crash backoff.

Pure: plain values in (an exit status, the guest's `restart` setting, a restart history and
clock readings), plain values out. It never reads a clock, runs a process or touches the host;
the supervisor (`reconciler/supervise.py`) feeds it and carries out its decisions.

The table (DESIGN.md "Guest lifecycle", vmrun.sh semantics):

    exit                              meaning         on-failure        always        never
    bhyve 0                           reboot          reboot            reboot        reboot
    bhyve 1 / 2                       poweroff/halt   stay-off          boot          stay-off
    loader 1 (`quit`) / 2 (`reboot`)  loader-*        stay-off          boot          stay-off
    bhyve 3, 4, other, a signal,      triple-fault,   backoff           backoff       give-up
    any other loader failure, lost    error, ...
    bhyve 1 / loader 1 that failed    vm-destroyed,   backoff           backoff       give-up
    (see below)                       error, loader-error

Status 1 means two things (reference §8.2, §8.3): bhyve exits 1 for a guest power-off and, on
13.x/14.x, when `vm_run` fails (its VM destroyed under it) or on a usage error; a loader exits 1
for a menu `quit` and when it cannot create or set up the VM. The supervisor gathers an
`ExitContext` (was a stop requested, does /dev/vmm/NAME still exist right after the exit, what
the program printed that says it failed) and the status is read with it: a stop we asked for is
a stop; a VM gone right after bhyve exited was destroyed under it (we never pass -D, which would
destroy it on power-off); a failure line printed by the program is a failure; else 1 is the
guest's own power-off or quit.

A guest's own reboot is never a failure, so it reboots whatever `restart` says (vmrun.sh loops
on it too). `never` means a failed guest is left off in state `error` (VM destroyed, the exit in
the log and status) until a person starts it or edits its file. `always` boots a guest that
powered itself off again at once; only when it keeps powering off quickly does it get the
crash backoff (second quick power-off waits 1 s, then 2 s, ...), so a guest or loader that
exits immediately cannot spin the host.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from reconciler.settings import Backoff
from reconciler.spec import RestartPolicy

Phase = Literal["loader", "bhyve"]
Meaning = Literal[
    "reboot",
    "poweroff",
    "halt",
    "triple-fault",
    "error",
    "signal",
    "loader-quit",
    "loader-reboot",
    "loader-error",
    "vm-destroyed",
    "unknown",
]
Action = Literal["reboot", "stay-off", "boot", "backoff", "give-up"]

DEFAULT_BACKOFF = Backoff()

_SIGNAL_BASE = 128  # sh reports death by signal N as $? = 128 + N
_MAX_SIGNAL = 64

_BHYVE_MEANINGS: dict[int, Meaning] = {0: "reboot", 1: "poweroff", 2: "halt", 3: "triple-fault"}
_LOADER_MEANINGS: dict[int, Meaning] = {1: "loader-quit", 2: "loader-reboot"}
_CLEAN_STOPS: frozenset[Meaning] = frozenset({"poweroff", "halt", "loader-quit", "loader-reboot"})


@dataclass(frozen=True)
class ExitContext:
    """What else was seen when a boot ended, for the statuses that mean two things.

    `vm_exists`: whether /dev/vmm/NAME existed right after the exit; None when not looked at
    then (an exit found in an old record: the VM may have been destroyed since). `printed`: the
    line(s) the program printed that say it failed (`facts.boot_failure`), None when none did.
    """

    stop_requested: bool = False
    vm_exists: bool | None = None
    printed: str | None = None


NO_CONTEXT = ExitContext()


@dataclass(frozen=True)
class ExitStatus:
    """How one boot ended: `code` (exit status) or `signal` (killed by it), in which phase, and
    the context it ended in (read by `meaning` for a status 1).

    Both None means the boot ended without a record (its shim was killed): an error.
    """

    code: int | None
    signal: int | None = None
    phase: Phase = "bhyve"
    context: ExitContext = NO_CONTEXT

    @classmethod
    def from_shell(cls, phase: Phase, status: int) -> ExitStatus:
        """From sh's `$?` as the shim records it (128+N for signal N)."""
        if _SIGNAL_BASE < status <= _SIGNAL_BASE + _MAX_SIGNAL:
            return cls(code=None, signal=status - _SIGNAL_BASE, phase=phase)
        return cls(code=status, signal=None, phase=phase)

    def with_context(self, context: ExitContext) -> ExitStatus:
        return replace(self, context=context)

    @property
    def shell_status(self) -> int | None:
        """The status as sh would show it; None when the boot left no record."""
        if self.signal is not None:
            return _SIGNAL_BASE + self.signal
        return self.code

    @property
    def meaning(self) -> Meaning:
        if self.signal is not None:
            return "signal"
        if self.code is None:
            return "unknown"
        ctx = self.context
        ambiguous = self.code == 1 and not ctx.stop_requested
        if self.phase == "loader":
            if ambiguous and ctx.printed is not None:
                return "loader-error"
            # Loader status 0 is never recorded (bhyve runs next); seeing it means a broken record.
            return _LOADER_MEANINGS.get(self.code, "loader-error")
        if ambiguous and ctx.vm_exists is False:
            return "vm-destroyed"
        if ambiguous and ctx.printed is not None:
            return "error"
        return _BHYVE_MEANINGS.get(self.code, "error")

    @property
    def reason(self) -> str | None:
        """Why a status 1 reads as a failure, for a person; None when it does not."""
        meaning = self.meaning
        printed = self.context.printed
        if meaning == "vm-destroyed":
            said = f"; bhyve said: {printed}" if printed is not None else ""
            return f"its VM was destroyed under it{said}"
        if self.code == 1 and meaning in ("error", "loader-error"):
            return printed
        return None


@dataclass(frozen=True)
class Decision:
    """What to do after a boot ended. `destroy`: destroy the VM before anything else."""

    action: Action
    meaning: Meaning

    @property
    def destroy(self) -> bool:
        # A rebooting guest keeps its VM: the loader re-initialises it, as under vmrun.sh.
        return self.action != "reboot"

    @property
    def failed(self) -> bool:
        return self.action in ("backoff", "give-up")


def decide(exit: ExitStatus, restart: RestartPolicy) -> Decision:
    meaning = exit.meaning
    if meaning == "reboot":
        return Decision("reboot", meaning)
    if meaning in _CLEAN_STOPS:
        return Decision("boot" if restart == "always" else "stay-off", meaning)
    return Decision("give-up" if restart == "never" else "backoff", meaning)


@dataclass(frozen=True)
class RestartHistory:
    """Consecutive restarts not followed by `STABLE_AFTER` seconds of running."""

    streak: int = 0


def backoff_delay(streak: int, backoff: Backoff = DEFAULT_BACKOFF) -> float:
    """Delay before the restart that follows `streak` earlier quick restarts: 1, 2, 4 ... 300."""
    # Past 2**9 the cap applies anyway; bounding the exponent keeps the float small.
    return min(backoff.base * 2.0 ** min(streak, 30), backoff.cap)


def settle(
    history: RestartHistory, *, running_since: float, now: float, backoff: Backoff = DEFAULT_BACKOFF
) -> RestartHistory:
    """Forget past restarts once the guest has run `stable_after` seconds without failing."""
    if now - running_since >= backoff.stable_after:
        return RestartHistory()
    return history


def next_restart(
    history: RestartHistory,
    *,
    running_since: float,
    now: float,
    clean: bool = False,
    backoff: Backoff = DEFAULT_BACKOFF,
) -> tuple[float, RestartHistory]:
    """Delay before booting again after a boot that started at `running_since` ended at `now`.

    `clean`: the guest stopped itself under `restart = "always"`: the first time is immediate.
    """
    settled = settle(history, running_since=running_since, now=now, backoff=backoff)
    if clean:
        delay = 0.0 if settled.streak == 0 else backoff_delay(settled.streak - 1, backoff)
    else:
        delay = backoff_delay(settled.streak, backoff)
    return delay, RestartHistory(settled.streak + 1)
