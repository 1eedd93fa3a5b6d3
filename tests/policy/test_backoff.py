"""Crash backoff: 1 s doubling to a 5 min cap, reset after 10 min of stable running."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from reconciler.policy import RestartHistory, backoff_delay, next_restart
from reconciler.settings import Backoff

BACKOFF_CAP = Backoff().cap
STABLE_AFTER = Backoff().stable_after


def crash_delays(count: int, ran_for: float) -> list[float]:
    history, now, delays = RestartHistory(), 1000.0, []
    for _ in range(count):
        started = now
        now = started + ran_for
        delay, history = next_restart(history, running_since=started, now=now)
        delays.append(delay)
        now += delay
    return delays


def test_quick_crashes_double_from_one_second() -> None:
    assert crash_delays(3, ran_for=0.5) == [1.0, 2.0, 4.0]


def test_delay_is_capped_at_five_minutes() -> None:
    delays = crash_delays(12, ran_for=1.0)
    assert delays[8] == 256.0
    assert delays[9:] == [300.0, 300.0, 300.0]


def test_ten_minutes_of_stable_running_resets_the_backoff() -> None:
    history = RestartHistory(streak=5)
    delay, after = next_restart(history, running_since=0.0, now=STABLE_AFTER)
    assert delay == 1.0
    assert after.streak == 1


def test_just_under_ten_minutes_does_not_reset() -> None:
    history = RestartHistory(streak=5)
    delay, after = next_restart(history, running_since=0.0, now=STABLE_AFTER - 0.001)
    assert delay == 32.0
    assert after.streak == 6


def test_restart_always_after_power_off_is_immediate_the_first_time() -> None:
    delay, history = next_restart(RestartHistory(), running_since=0.0, now=2.0, clean=True)
    assert delay == 0.0
    delay, history = next_restart(history, running_since=2.0, now=3.0, clean=True)
    assert delay == 1.0
    delay, _ = next_restart(history, running_since=4.0, now=5.0, clean=True)
    assert delay == 2.0


def test_power_off_after_stable_running_is_immediate_again() -> None:
    delay, _ = next_restart(
        RestartHistory(streak=7), running_since=0.0, now=STABLE_AFTER + 1, clean=True
    )
    assert delay == 0.0


@given(st.integers(min_value=0, max_value=10_000))
def test_delays_never_shrink_and_never_exceed_the_cap(streak: int) -> None:
    assert backoff_delay(streak) <= backoff_delay(streak + 1) <= BACKOFF_CAP
    assert backoff_delay(streak) >= 1.0


def test_an_injected_backoff_sets_base_cap_and_forgiveness() -> None:
    short = Backoff(base=0.25, cap=1.0, stable_after=5.0)
    delays = []
    history, now = RestartHistory(), 0.0
    for _ in range(4):
        delay, history = next_restart(history, running_since=now, now=now + 0.1, backoff=short)
        delays.append(delay)
        now += 0.1 + delay
    assert delays == [0.25, 0.5, 1.0, 1.0]
    delay, history = next_restart(history, running_since=now, now=now + 5.0, backoff=short)
    assert (delay, history.streak) == (0.25, 1)
