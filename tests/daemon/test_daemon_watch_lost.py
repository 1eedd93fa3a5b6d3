"""The conf_dir watch's emitter thread dies (kqueue's EMFILE, any unexpected OSError): the
daemon notices at its next wake-up, says so loudly (a log event and a line in status), re-reads
conf_dir in a pass as the resync would, and watches again. An in-process daemon (its loop in
this main thread, as in production) with an emitter that can be made to fail."""

from __future__ import annotations

import errno
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from structlog.testing import capture_logs
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingEmitter

from reconciler import watch
from reconciler.config import DaemonConfig
from reconciler.daemon import Daemon
from reconciler.host.freebsd import FreeBSDHost
from reconciler.host.runner import SubprocessRunner
from reconciler.settings import Timings
from reconciler.sim import SimulatedHost
from reconciler.status import read_status

WAIT = 15.0  # upper bound for the daemon to act; never an expectation of speed
STOPPED = 'name = "{name}"\nstate = "stopped"\n[[disk]]\npath = "/vm/{name}.img"\n'


class DyingEmitter(PollingEmitter):
    fail = threading.Event()
    made = 0

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        DyingEmitter.made += 1

    def queue_events(self, timeout: float) -> None:
        if DyingEmitter.fail.is_set():
            DyingEmitter.fail.clear()
            raise OSError(errno.EMFILE, "Too many open files")
        super().queue_events(timeout)


def wait_until(condition: Callable[[], object]) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.02)


def test_a_dead_watch_is_reported_and_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    DyingEmitter.fail.clear()
    DyingEmitter.made = 0
    monkeypatch.setattr(
        watch,
        "make_observer",
        lambda backend, poll_interval: (BaseObserver(DyingEmitter, timeout=0.02), False),
    )
    sim = SimulatedHost(tmp_path / "host").setup()
    conf = tmp_path / "conf.d"
    conf.mkdir(mode=0o755)
    config = replace(
        DaemonConfig(),
        conf_dir=conf,
        state_dir=sim.root / "var/db/bhyve-reconciler",
        run_dir=sim.root / "run",  # short: a control socket path must fit sun_path
        resync_interval=3600.0,  # only file events, or the fallback, explain a pass
    )
    daemon = Daemon(
        config,
        FreeBSDHost(SubprocessRunner(sim.env()), root=sim.root),
        timings=Timings(max_sleep=0.05),
    )
    failure: list[BaseException] = []

    def drop(name: str) -> None:
        path = conf / f"{name}.toml"
        path.write_text(STOPPED.format(name=name))
        path.chmod(0o644)

    def guests() -> set[str]:
        status = read_status(config.run_dir)
        return set() if status is None else {g.name for g in status.guests}

    def host_errors() -> tuple[str, ...]:
        status = read_status(config.run_dir)
        return () if status is None else status.host_errors

    def body() -> None:
        try:
            wait_until(lambda: daemon.passes >= 1)
            drop("before")
            wait_until(lambda: "before" in guests())

            DyingEmitter.fail.set()
            wait_until(lambda: any(e.startswith("watch: ") for e in host_errors()))
            line = next(e for e in host_errors() if e.startswith("watch: "))
            assert str(conf) in line and "Too many open files" in line

            drop("after")  # seen only if the daemon watches again
            wait_until(lambda: "after" in guests())
        except BaseException as exc:
            failure.append(exc)
        finally:
            os.kill(os.getpid(), signal.SIGUSR1)  # detach

    thread = threading.Thread(target=body, daemon=True)
    with capture_logs() as logs:
        thread.start()
        daemon.run()
        thread.join()
    if failure:
        raise failure[0]
    assert DyingEmitter.made == 2  # the first watch, and the one made after it died
    lost = [e for e in logs if e["event"] == "watch.lost"]
    assert len(lost) == 1 and lost[0]["log_level"] == "error"
    assert lost[0]["error"] == "OSError: [Errno 24] Too many open files"
    assert [e["event"] for e in logs if e["event"].startswith("watch.")].count(
        "watch.restarted"
    ) == 1
