"""The per-pass safety net for a missed boot-record event, on an in-process daemon with no
watchers at all: only passes can notice what the guests did."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from daemon_harness import VISIBLE_BACKOFF, Harness, guest_toml, wait_for

from reconciler.config import DaemonConfig
from reconciler.daemon import FULL_SWEEP_EVERY, Daemon
from reconciler.host.freebsd import FreeBSDHost
from reconciler.host.runner import SubprocessRunner
from reconciler.sim import SimulatedHost


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[Daemon, SimulatedHost]]:
    sim = SimulatedHost(tmp_path / "host").setup()
    conf = tmp_path / "conf.d"
    conf.mkdir(mode=0o755)
    spec = conf / "vm1.toml"
    spec.write_text('name = "vm1"\nloader = "uefi"\n[[disk]]\npath = "/vm/vm1.img"\nsize = "1G"\n')
    spec.chmod(0o644)
    config = replace(
        DaemonConfig(),
        conf_dir=conf,
        state_dir=sim.root / "var/db/bhyve-reconciler",
        run_dir=sim.root / "var/run/bhyve-reconciler",
        stop_timeout=1.0,
    )
    d = Daemon(config, FreeBSDHost(SubprocessRunner(sim.env()), root=sim.root))
    try:
        yield d, sim
    finally:
        shim = config.run_dir / "guests" / "vm1" / "shim.pid"
        if shim.exists():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(int(shim.read_text()), signal.SIGKILL)


def pass_until(d: Daemon, state: str, passes: int) -> bool:
    for _ in range(passes):
        d.reconcile()
        if d.supervisors["vm1"].state == state:
            return True
        time.sleep(0.1)
    return False


def test_an_exit_recorded_between_passes_is_seen_by_the_next_pass(
    daemon: tuple[Daemon, SimulatedHost],
) -> None:
    d, sim = daemon
    assert pass_until(d, "running", 50)
    sim.wait_for_bhyve("vm1")
    sim.guest_do("vm1", "poweroff")
    exit_record = d.config.run_dir / "guests" / "vm1" / "exit"
    wait_for(exit_record.exists, "the shim to record the exit")
    d.reconcile()
    assert d.supervisors["vm1"].state == "powered-off"


def test_a_boot_killed_without_a_record_is_found_by_the_next_pass(
    daemon: tuple[Daemon, SimulatedHost],
) -> None:
    d, sim = daemon
    assert pass_until(d, "running", 50)
    sim.wait_for_bhyve("vm1")
    shim = int((d.config.run_dir / "guests" / "vm1" / "shim.pid").read_text())
    os.killpg(shim, signal.SIGKILL)  # the whole boot dies: no exit record is ever written
    d.reconcile()
    assert d.supervisors["vm1"].state != "running"


def test_with_the_record_watcher_up_a_lost_boot_is_found_within_a_full_sweep(
    harness: Harness,
) -> None:
    # The lost boot is seen as a crash: its backoff keeps it out of `running` while we look.
    harness.configure(crash_backoff=VISIBLE_BACKOFF)
    harness.put("vm1", guest_toml("vm1"))
    daemon = harness.start()
    harness.wait_running("vm1")
    harness.sim.wait_for_bhyve("vm1")
    shim = int((harness.run_dir / "guests" / "vm1" / "shim.pid").read_text())
    os.killpg(shim, signal.SIGKILL)  # no exit record: no event either
    for _ in range(FULL_SWEEP_EVERY + 1):
        before = harness.observations()
        daemon.send_signal(signal.SIGHUP)  # a pass (re-reading the config)
        harness.wait_pass(before)
        if harness.state("vm1") not in ("running", None):
            return
    raise AssertionError(f"vm1 still {harness.state('vm1')} after {FULL_SWEEP_EVERY + 1} passes")
