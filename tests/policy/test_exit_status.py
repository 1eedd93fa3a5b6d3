"""What a boot's recorded exit means (bhyve(8) EXIT STATUS, bhyveload exit codes, sh's $?)."""

from __future__ import annotations

import pytest

from reconciler.policy import ExitStatus


@pytest.mark.parametrize(
    ("status", "meaning"),
    [
        (0, "reboot"),
        (1, "poweroff"),
        (2, "halt"),
        (3, "triple-fault"),
        (4, "error"),
        (64, "error"),
        (100, "error"),
        (127, "error"),
        (128, "error"),
    ],
)
def test_bhyve_exit_codes(status: int, meaning: str) -> None:
    exit = ExitStatus.from_shell("bhyve", status)
    assert exit.meaning == meaning
    assert exit.signal is None
    assert exit.shell_status == status


@pytest.mark.parametrize(("status", "signal"), [(129, 1), (134, 6), (137, 9), (143, 15), (192, 64)])
def test_sh_status_above_128_is_death_by_signal(status: int, signal: int) -> None:
    exit = ExitStatus.from_shell("bhyve", status)
    assert exit.signal == signal
    assert exit.code is None
    assert exit.meaning == "signal"
    assert exit.shell_status == status


def test_status_past_the_signal_range_is_a_plain_error() -> None:
    exit = ExitStatus.from_shell("bhyve", 255)
    assert (exit.code, exit.signal, exit.meaning) == (255, None, "error")


@pytest.mark.parametrize(
    ("status", "meaning"),
    [
        (1, "loader-quit"),
        (2, "loader-reboot"),
        (64, "loader-error"),
        (3, "loader-error"),
        (0, "loader-error"),
        (143, "signal"),
    ],
)
def test_loader_exit_codes(status: int, meaning: str) -> None:
    exit = ExitStatus.from_shell("loader", status)
    assert exit.phase == "loader"
    assert exit.meaning == meaning


def test_a_boot_without_a_record_is_unknown() -> None:
    exit = ExitStatus(code=None, signal=None)
    assert exit.meaning == "unknown"
    assert exit.shell_status is None
