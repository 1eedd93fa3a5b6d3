"""The lifecycle table of DESIGN.md, row by row, for each `restart` setting."""

from __future__ import annotations

import pytest

from reconciler.policy import ExitStatus, decide
from reconciler.spec import RestartPolicy

POLICIES: tuple[RestartPolicy, ...] = ("on-failure", "always", "never")


def bhyve(status: int) -> ExitStatus:
    return ExitStatus.from_shell("bhyve", status)


def loader(status: int) -> ExitStatus:
    return ExitStatus.from_shell("loader", status)


@pytest.mark.parametrize("restart", POLICIES)
def test_guest_reboot_reboots_without_destroying_whatever_the_policy(
    restart: RestartPolicy,
) -> None:
    decision = decide(bhyve(0), restart)
    assert decision.action == "reboot"
    assert not decision.destroy
    assert not decision.failed


@pytest.mark.parametrize("exit", [bhyve(1), bhyve(2), loader(1), loader(2)])
@pytest.mark.parametrize("restart", ["on-failure", "never"])
def test_clean_stop_stays_off(exit: ExitStatus, restart: RestartPolicy) -> None:
    decision = decide(exit, restart)
    assert decision.action == "stay-off"
    assert decision.destroy
    assert not decision.failed


@pytest.mark.parametrize("exit", [bhyve(1), bhyve(2), loader(1), loader(2)])
def test_clean_stop_boots_again_with_restart_always(exit: ExitStatus) -> None:
    decision = decide(exit, "always")
    assert decision.action == "boot"
    assert decision.destroy


FAILURES = [
    bhyve(3),
    bhyve(4),
    bhyve(100),
    bhyve(137),
    bhyve(143),
    loader(64),
    loader(137),
    ExitStatus(None, None),
]


@pytest.mark.parametrize("exit", FAILURES)
@pytest.mark.parametrize("restart", ["on-failure", "always"])
def test_failures_back_off(exit: ExitStatus, restart: RestartPolicy) -> None:
    decision = decide(exit, restart)
    assert decision.action == "backoff"
    assert decision.destroy
    assert decision.failed
    assert decision.meaning == exit.meaning


@pytest.mark.parametrize("exit", FAILURES)
def test_failures_give_up_with_restart_never(exit: ExitStatus) -> None:
    decision = decide(exit, "never")
    assert decision.action == "give-up"
    assert decision.destroy
    assert decision.failed
