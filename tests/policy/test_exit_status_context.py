"""Exit status 1 means two things, for bhyve and for its loaders (reference §8.2, §8.3): a
power-off (or a menu `quit`) the guest asked for, or the program's own failure. The context the
supervisor gathers decides: was a stop requested, does /dev/vmm/NAME still exist, and what the
program printed. Pure values in, a decision out."""

from __future__ import annotations

import pytest

from reconciler.policy import ExitContext, ExitStatus, decide

VM_RUN = "vm_run error -1, errno 6"  # bhyverun.c vm_loop(): VM_RUN on a destroyed VM (ENXIO)
ENOMEM = "vm_create: Cannot allocate memory"  # bhyveload.c: perror("vm_create")


def bhyve(status: int, **context: object) -> ExitStatus:
    return ExitStatus(status, phase="bhyve", context=ExitContext(**context))  # type: ignore[arg-type]


def loader(status: int, **context: object) -> ExitStatus:
    return ExitStatus(status, phase="loader", context=ExitContext(**context))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("exit", "meaning", "action"),
    [
        # Nothing known beyond the status: as before, a power-off.
        (bhyve(1), "poweroff", "stay-off"),
        (bhyve(1, vm_exists=True), "poweroff", "stay-off"),
        # The VM is gone right after bhyve exited 1: destroyed under it (13.x/14.x).
        (bhyve(1, vm_exists=False), "vm-destroyed", "backoff"),
        (bhyve(1, vm_exists=False, printed=VM_RUN), "vm-destroyed", "backoff"),
        # Its VM still there, bhyve said why it failed (vm_run failed otherwise, a usage error).
        (bhyve(1, vm_exists=True, printed=VM_RUN), "error", "backoff"),
        (bhyve(1, vm_exists=None, printed="Usage: bhyve [-AaCDeHhPSuWwxY]"), "error", "backoff"),
        # A stop we asked for ends with 1 whatever else happened.
        (bhyve(1, stop_requested=True, vm_exists=False, printed=VM_RUN), "poweroff", "stay-off"),
        # Other statuses keep their one meaning.
        (bhyve(2, vm_exists=False), "halt", "stay-off"),
        (bhyve(4, vm_exists=False), "error", "backoff"),  # 15: a destroyed VM exits 4
        (bhyve(0, vm_exists=True, printed=VM_RUN), "reboot", "reboot"),
        # The loader: a menu quit prints nothing; a failure says why.
        (loader(1), "loader-quit", "stay-off"),
        (loader(1, vm_exists=True), "loader-quit", "stay-off"),
        (loader(1, printed=ENOMEM), "loader-error", "backoff"),
        (loader(1, printed="Error in initializing VM", vm_exists=False), "loader-error", "backoff"),
        (loader(2, printed=ENOMEM), "loader-reboot", "stay-off"),
    ],
)
def test_status_1_is_decided_by_its_context(exit: ExitStatus, meaning: str, action: str) -> None:
    assert exit.meaning == meaning
    assert decide(exit, "on-failure").action == action


def test_a_failure_is_given_up_under_restart_never_and_retried_under_always() -> None:
    assert decide(loader(1, printed=ENOMEM), "never").action == "give-up"
    assert decide(bhyve(1, vm_exists=False), "always").action == "backoff"
    assert decide(bhyve(1, vm_exists=True), "always").action == "boot"  # a real power-off


def test_the_reason_says_what_was_seen() -> None:
    assert loader(1, printed=ENOMEM).reason == ENOMEM
    assert bhyve(1, vm_exists=False, printed=VM_RUN).reason == (
        f"its VM was destroyed under it; bhyve said: {VM_RUN}"
    )
    assert bhyve(1, vm_exists=False).reason == "its VM was destroyed under it"
    assert bhyve(1, vm_exists=True).reason is None
    assert bhyve(1, stop_requested=True, printed=VM_RUN).reason is None


def test_the_shell_status_and_the_record_round_trip_keep_no_context() -> None:
    exit = ExitStatus.from_shell("loader", 1)
    assert exit.context == ExitContext()
    assert exit.with_context(ExitContext(printed=ENOMEM)).shell_status == 1
