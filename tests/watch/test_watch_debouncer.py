"""The debouncer on a fake clock: quiet period, max-wait bound, one signal per burst."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.watch import Debouncer

QUIET = 0.05
MAX_WAIT = 0.5


def run_clock(debouncer: Debouncer, event_times: list[float]) -> list[float]:
    """Feeds events in order and fires every signal exactly at its deadline, as the watcher's
    thread does; returns the fire times."""
    fires: list[float] = []
    for t in event_times:
        while (deadline := debouncer.deadline()) is not None and deadline <= t:
            assert debouncer.take(deadline)
            fires.append(deadline)
        debouncer.event(t)
    while (deadline := debouncer.deadline()) is not None:
        assert debouncer.take(deadline)
        fires.append(deadline)
    return fires


def test_nothing_pending_means_no_deadline() -> None:
    d = Debouncer(QUIET, MAX_WAIT)
    assert d.deadline() is None
    assert not d.pending
    assert not d.due(1e9)
    assert not d.take(1e9)


def test_single_event_is_due_after_the_quiet_period() -> None:
    d = Debouncer(QUIET, MAX_WAIT)
    d.event(10.0)
    assert d.deadline() == pytest.approx(10.0 + QUIET)
    assert not d.due(10.0 + QUIET / 2)
    assert not d.take(10.0 + QUIET / 2)
    assert d.due(10.0 + QUIET)
    assert d.take(10.0 + QUIET)
    assert not d.pending
    assert not d.take(10.0 + QUIET)


def test_each_event_in_a_burst_restarts_the_quiet_period() -> None:
    d = Debouncer(QUIET, MAX_WAIT)
    d.event(0.0)
    d.event(0.03)
    d.event(0.06)
    assert not d.due(0.06 + QUIET - 0.001)
    assert d.deadline() == pytest.approx(0.06 + QUIET)


def test_a_steady_trickle_is_cut_at_max_wait() -> None:
    d = Debouncer(QUIET, MAX_WAIT)
    step = QUIET / 2
    for i in range(100):
        d.event(i * step)
    # the quiet period never elapsed, yet the burst is due max_wait after its first event
    assert d.deadline() == pytest.approx(MAX_WAIT)


def test_a_trickle_over_ten_seconds_signals_about_every_max_wait() -> None:
    step = QUIET / 5
    times = [i * step for i in range(int(10.0 / step))]
    fires = run_clock(Debouncer(QUIET, MAX_WAIT), times)
    gaps = [b - a for a, b in itertools.pairwise(fires)]
    assert max(gaps) <= MAX_WAIT + step + 1e-9
    assert len(fires) >= int(10.0 / (MAX_WAIT + step))
    assert len(fires) <= int(10.0 / MAX_WAIT) + 2


def test_a_new_burst_measures_max_wait_from_its_own_first_event() -> None:
    d = Debouncer(QUIET, MAX_WAIT)
    d.event(0.0)
    assert d.take(QUIET)
    d.event(5.0)
    for i in range(1, 60):
        d.event(5.0 + i * 0.01)
    assert d.deadline() == pytest.approx(5.0 + MAX_WAIT)


@pytest.mark.parametrize(("quiet", "max_wait"), [(0.0, 0.5), (-1.0, 0.5), (0.5, 0.1)])
def test_nonsensical_timings_are_refused(quiet: float, max_wait: float) -> None:
    with pytest.raises(ValueError):
        Debouncer(quiet, max_wait)


gaps_strategy = st.lists(st.floats(min_value=0.0, max_value=2.0), min_size=1, max_size=60)


def _times(gaps: list[float]) -> list[float]:
    times, t = [], 0.0
    for gap in gaps:
        t += gap
        times.append(t)
    return times


@given(gaps_strategy)
def test_every_event_is_signalled_within_max_wait(gaps: list[float]) -> None:
    times = _times(gaps)
    fires = run_clock(Debouncer(QUIET, MAX_WAIT), times)
    for t in times:
        assert any(t <= f <= t + MAX_WAIT + 1e-9 for f in fires), (t, fires)


@given(gaps_strategy)
def test_never_more_signals_than_events_and_never_early(gaps: list[float]) -> None:
    times = _times(gaps)
    fires = run_clock(Debouncer(QUIET, MAX_WAIT), times)
    assert 1 <= len(fires) <= len(times)
    for f in fires:
        before = [t for t in times if t < f]
        # a signal is either after a full quiet period or cut by max_wait
        assert f - before[-1] >= QUIET - 1e-9 or f - before[0] >= MAX_WAIT - 1e-9


@given(st.lists(st.floats(min_value=0.0, max_value=QUIET * 0.99), min_size=1, max_size=200))
def test_a_dense_burst_shorter_than_max_wait_is_one_signal(gaps: list[float]) -> None:
    times = _times(gaps)
    if times[-1] - times[0] >= MAX_WAIT:
        times = [t for t in times if t - times[0] < MAX_WAIT]
    assert len(run_clock(Debouncer(QUIET, MAX_WAIT), times)) == 1
