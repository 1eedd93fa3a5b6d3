"""Process exits come from the kernel (pidfd here, kqueue on FreeBSD), for children and for
processes the daemon did not start (guests adopted after a restart)."""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
from collections.abc import Iterator

import pytest

from reconciler.host.procwatch import PidfdWatcher, exit_watcher

WAIT = 10.0  # a bound for a slow machine, not a timing assertion


@pytest.fixture
def events() -> queue.SimpleQueue[str]:
    return queue.SimpleQueue()


@pytest.fixture
def watcher(events: queue.SimpleQueue[str]) -> Iterator[PidfdWatcher]:
    found = exit_watcher(events.put)
    assert isinstance(found, PidfdWatcher), "this Linux must offer pidfd_open"
    found.start()
    yield found
    found.stop()


def test_a_childs_exit_is_reported_with_its_token(
    watcher: PidfdWatcher, events: queue.SimpleQueue[str]
) -> None:
    child = subprocess.Popen(["sleep", "30"])
    assert watcher.watch(child.pid, "web")
    assert events.empty()
    child.send_signal(signal.SIGTERM)
    assert events.get(timeout=WAIT) == "web"
    child.wait()
    assert watcher.watched == 0


def test_a_process_started_by_someone_else_is_watched_too(
    watcher: PidfdWatcher, events: queue.SimpleQueue[str]
) -> None:
    # sh starts sleep in the background and exits: sleep is no child of ours.
    out = subprocess.run(
        ["sh", "-c", "sleep 30 >/dev/null 2>&1 & echo $!"],
        capture_output=True,
        text=True,
        check=True,
    )
    pid = int(out.stdout)
    try:
        assert watcher.watch(pid, "adopted")
        os.kill(pid, signal.SIGKILL)
        assert events.get(timeout=WAIT) == "adopted"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_a_process_already_gone_is_refused(watcher: PidfdWatcher) -> None:
    child = subprocess.Popen(["true"])
    child.wait()
    assert not watcher.watch(child.pid, "gone")
    assert watcher.watched == 0


def test_many_exits_each_arrive_once(watcher: PidfdWatcher, events: queue.SimpleQueue[str]) -> None:
    children = [subprocess.Popen(["sleep", "30"]) for _ in range(20)]
    for index, child in enumerate(children):
        assert watcher.watch(child.pid, f"g{index}")
    for child in children:
        child.kill()
    seen = sorted(events.get(timeout=WAIT) for _ in children)
    assert seen == sorted(f"g{i}" for i in range(20))
    for child in children:
        child.wait()
    assert events.empty()


def test_stop_ends_the_thread(events: queue.SimpleQueue[str]) -> None:
    found = exit_watcher(events.put)
    assert found is not None
    found.start()
    assert found.is_alive()
    found.stop()
    assert not found.is_alive()
