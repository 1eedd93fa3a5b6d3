"""The watcher on real files: real watchdog events in a temporary conf.d, no mocks.

Absence of a notification is proven with a sentinel, not a sleep: events reach the watcher in
order, so once the sentinel's notification arrives, anything that would have been reported for
the earlier changes has been reported too (in that batch or an earlier one).
"""

from __future__ import annotations

import os
import queue
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reconciler.errors import DaemonError
from reconciler.guestfile import is_spec_file_name
from reconciler.watch import Backend, ConfWatcher

WAIT = 5.0  # upper bound for an event to arrive; never an expectation of speed
SENTINEL = "zz-sentinel.toml"
SPEC = 'cpus = 2\nmemory = "1G"\n'


class Recorder:
    def __init__(self) -> None:
        self.calls: queue.SimpleQueue[frozenset[str]] = queue.SimpleQueue()

    def __call__(self, names: frozenset[str]) -> None:
        self.calls.put(names)

    def next(self) -> frozenset[str]:
        try:
            return self.calls.get(timeout=WAIT)
        except queue.Empty:
            pytest.fail(f"no notification within {WAIT} s")

    def until(self, name: str) -> list[frozenset[str]]:
        """Every notification up to and including the first that names `name`."""
        seen = [self.next()]
        while name not in seen[-1]:
            seen.append(self.next())
        return seen

    def after_sentinel(self, conf: Path) -> list[frozenset[str]]:
        (conf / SENTINEL).write_text(SPEC)
        return self.until(SENTINEL)


def names_in(notifications: list[frozenset[str]]) -> set[str]:
    return set().union(*notifications)


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    conf, staging = tmp_path / "conf.d", tmp_path / "staging"
    conf.mkdir()
    staging.mkdir()
    return conf, staging


WatchFactory = Callable[..., Recorder]


@pytest.fixture
def watch() -> Iterator[WatchFactory]:
    watchers: list[ConfWatcher] = []

    def start(
        directory: Path,
        backend: Backend = "native",
        *,
        accept: Callable[[str], bool] = is_spec_file_name,
        recursive: bool = False,
    ) -> Recorder:
        recorder = Recorder()
        watcher = ConfWatcher(
            directory,
            recorder,
            accept=accept,
            recursive=recursive,
            backend=backend,
            poll_interval=0.05,
        )
        watcher.start()
        watchers.append(watcher)
        return recorder

    yield start
    for watcher in watchers:
        watcher.stop()


def test_a_file_renamed_in_from_outside_is_one_notification(
    dirs: tuple[Path, Path], watch: WatchFactory
) -> None:
    conf, staging = dirs
    rec = watch(conf)
    (staging / "web.toml").write_text(SPEC)
    os.rename(staging / "web.toml", conf / "web.toml")
    assert rec.next() == {"web.toml"}
    assert rec.after_sentinel(conf) == [{SENTINEL}]


def test_a_temp_file_renamed_into_place_counts_under_its_final_name(
    dirs: tuple[Path, Path], watch: WatchFactory
) -> None:
    conf, _ = dirs
    rec = watch(conf)
    temp = conf / ".ansible_tmp4k2jweb.toml"
    temp.write_text(SPEC)
    os.rename(temp, conf / "web.toml")
    assert rec.next() == {"web.toml"}


def test_a_file_written_in_place_is_reported_after_close_not_before(
    dirs: tuple[Path, Path], watch: WatchFactory
) -> None:
    conf, _ = dirs
    rec = watch(conf)
    with open(conf / "web.toml", "w") as half_written:
        half_written.write("cpus = ")
        half_written.flush()
        os.fsync(half_written.fileno())
        assert "web.toml" not in names_in(rec.after_sentinel(conf))
        half_written.write("2\n")
    assert rec.next() == {"web.toml"}


def test_fifty_files_renamed_in_at_once_are_a_handful_of_notifications(
    dirs: tuple[Path, Path], watch: WatchFactory
) -> None:
    conf, staging = dirs
    names = {f"guest{i:02d}.toml" for i in range(50)}
    for name in names:
        (staging / name).write_text(SPEC)
    rec = watch(conf)
    for name in sorted(names):
        os.rename(staging / name, conf / name)
    seen = [rec.next()]
    while names_in(seen) != names:
        seen.append(rec.next())
    assert len(seen) <= 5


def test_editor_debris_hidden_files_and_subdirectories_are_ignored(
    dirs: tuple[Path, Path], watch: WatchFactory
) -> None:
    conf, _ = dirs
    rec = watch(conf)
    for debris in [".web.toml.swp", ".web.toml.swx", "web.toml~", "#web.toml#", ".hidden.toml"]:
        (conf / debris).write_text(SPEC)
    (conf / "4913").write_text("")
    (conf / "4913").unlink()
    os.symlink("root@host.1234:1700000000", conf / ".#web.toml")  # emacs lock file
    (conf / "sub").mkdir()
    (conf / "sub" / "inner.toml").write_text(SPEC)
    (conf / "dir.toml").mkdir()
    assert rec.after_sentinel(conf) == [{SENTINEL}]


def test_the_daemon_reading_a_spec_wakes_nobody(
    dirs: tuple[Path, Path], watch: WatchFactory
) -> None:
    conf, _ = dirs
    (conf / "web.toml").write_text(SPEC)
    rec = watch(conf)
    assert (conf / "web.toml").read_text() == SPEC
    assert rec.after_sentinel(conf) == [{SENTINEL}]


def test_a_vim_save_is_reported_as_the_spec_only(
    dirs: tuple[Path, Path], watch: WatchFactory
) -> None:
    conf, _ = dirs
    spec = conf / "web.toml"
    spec.write_text(SPEC)
    rec = watch(conf)
    # vim without backupcopy: probe the directory, move the original aside, write anew
    (conf / "4913").write_text("")
    (conf / "4913").unlink()
    os.rename(spec, conf / "web.toml~")
    spec.write_text("cpus = 4\n")
    (conf / "web.toml~").unlink()
    assert names_in(rec.until("web.toml")) == {"web.toml"}


def test_deleting_a_spec_is_a_notification(dirs: tuple[Path, Path], watch: WatchFactory) -> None:
    conf, _ = dirs
    (conf / "web.toml").write_text(SPEC)
    rec = watch(conf)
    (conf / "web.toml").unlink()
    assert rec.next() == {"web.toml"}


def test_renaming_a_spec_aside_reports_its_old_name(
    dirs: tuple[Path, Path], watch: WatchFactory
) -> None:
    conf, _ = dirs
    (conf / "web.toml").write_text(SPEC)
    rec = watch(conf)
    os.rename(conf / "web.toml", conf / "web.toml.disabled")
    assert rec.next() == {"web.toml"}


def test_a_spec_symlinked_in_counts(dirs: tuple[Path, Path], watch: WatchFactory) -> None:
    conf, staging = dirs
    (staging / "web.toml").write_text(SPEC)
    rec = watch(conf)
    os.symlink(staging / "web.toml", conf / "web.toml")
    assert rec.next() == {"web.toml"}


def test_a_second_directory_with_its_own_filter_and_subdirectories(
    tmp_path: Path, watch: WatchFactory
) -> None:
    guests = tmp_path / "run" / "guests"
    (guests / "web").mkdir(parents=True)
    rec = watch(guests, recursive=True, accept=lambda name: name.endswith("/exit"))
    (guests / "web" / "pid").write_text("1234\n")
    (guests / "web" / "exit").write_text("1\n")
    assert names_in(rec.until("web/exit")) == {"web/exit"}


def test_a_failing_consumer_does_not_end_the_watch(dirs: tuple[Path, Path]) -> None:
    conf, _ = dirs
    rec = Recorder()
    failed = threading.Event()

    def flaky(names: frozenset[str]) -> None:
        if not failed.is_set():
            failed.set()
            raise RuntimeError("consumer bug")
        rec(names)

    with ConfWatcher(conf, flaky) as watcher:
        (conf / "a.toml").write_text(SPEC)
        assert failed.wait(WAIT)
        assert rec.after_sentinel(conf) == [{SENTINEL}]
        assert watcher.is_alive()


def test_stop_is_final_and_idempotent(dirs: tuple[Path, Path]) -> None:
    conf, _ = dirs
    watcher = ConfWatcher(conf, Recorder())
    assert not watcher.is_alive()
    watcher.start()
    assert watcher.is_alive()
    watcher.stop()
    assert not watcher.is_alive()
    watcher.stop()
    with pytest.raises(RuntimeError):
        watcher.start()


def test_a_missing_directory_cannot_be_watched(tmp_path: Path) -> None:
    with pytest.raises(DaemonError, match="not a directory"):
        ConfWatcher(tmp_path / "nowhere", Recorder()).start()


def wait_until(condition: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_removing_the_watched_directory_is_noticed(dirs: tuple[Path, Path]) -> None:
    conf, _ = dirs
    with ConfWatcher(conf, Recorder()) as watcher:
        shutil.rmtree(conf)
        assert wait_until(lambda: not watcher.is_alive())


def test_swapping_in_a_new_directory_is_noticed(dirs: tuple[Path, Path]) -> None:
    conf, staging = dirs
    with ConfWatcher(conf, Recorder()) as watcher:
        os.rename(conf, conf.with_name("conf.d.old"))
        os.rename(staging, conf)
        assert not watcher.is_alive()


# kqueue (FreeBSD before 15) reports no closes; polling stands in for it here.


def test_polling_reports_a_renamed_in_file(dirs: tuple[Path, Path], watch: WatchFactory) -> None:
    conf, staging = dirs
    rec = watch(conf, "polling")
    (staging / "web.toml").write_text(SPEC)
    os.rename(staging / "web.toml", conf / "web.toml")
    assert rec.next() == {"web.toml"}


def test_polling_reports_a_deletion(dirs: tuple[Path, Path], watch: WatchFactory) -> None:
    conf, _ = dirs
    (conf / "web.toml").write_text(SPEC)
    rec = watch(conf, "polling")
    (conf / "web.toml").unlink()
    assert rec.next() == {"web.toml"}


def test_polling_ignores_debris(dirs: tuple[Path, Path], watch: WatchFactory) -> None:
    conf, _ = dirs
    rec = watch(conf, "polling")
    for debris in [".web.toml.swp", "web.toml~", "#web.toml#", ".hidden.toml"]:
        (conf / debris).write_text(SPEC)
    (conf / "sub").mkdir()
    (conf / "sub" / "inner.toml").write_text(SPEC)
    assert names_in(rec.after_sentinel(conf)) == {SENTINEL}
