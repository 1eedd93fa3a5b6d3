"""What every benchmark stands on: a simulated host with a daemon config and conf.d, the timed
production Runner, spec files, and the daemon driven in this process (its loop in the main
thread, as in production, and a benchmark's body in a second thread)."""

from __future__ import annotations

import os
import signal
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from reconciler.config import DaemonConfig
from reconciler.daemon import Daemon
from reconciler.host.freebsd import FreeBSDHost
from reconciler.host.runner import DEFAULT_TIMEOUT, Result, SubprocessRunner
from reconciler.sim import SimulatedHost
from reconciler.sim import state as st
from reconciler.sim.net import new_iface

Row = tuple[str, str, str, str]  # figure, measured, goal, verdict


class TimedRunner(SubprocessRunner):
    """The production runner, recording when each command started and how long it took."""

    def __init__(self, env: dict[str, str]) -> None:
        super().__init__(env)
        self.log: list[tuple[float, float, tuple[str, ...]]] = []

    def run(self, argv: Sequence[str], *, timeout: float = DEFAULT_TIMEOUT) -> Result:
        start = time.perf_counter()
        result = super().run(argv, timeout=timeout)
        self.log.append((start, time.perf_counter() - start, tuple(argv)))
        return result

    def seconds_between(self, t0: float, t1: float) -> float:
        return sum(d for s, d, _ in self.log if t0 <= s and s + d <= t1)


@dataclass
class World:
    base: Path
    sim: SimulatedHost
    config: DaemonConfig
    runner: TimedRunner

    @property
    def conf_dir(self) -> Path:
        return self.config.conf_dir

    def host(self) -> FreeBSDHost:
        return FreeBSDHost(self.runner, root=self.sim.root, vmm_dir=self.config.vmm_dir)


def make_world(base: Path) -> World:
    root = base / "host"
    sim = SimulatedHost(root).setup()
    conf = base / "conf.d"
    conf.mkdir(mode=0o755)
    conf.chmod(0o755)
    config = replace(
        DaemonConfig(),
        conf_dir=conf,
        state_dir=root / "var/db/bhyve-reconciler",
        run_dir=root / "var/run/bhyve-reconciler",
        stop_timeout=5.0,
        resync_interval=30.0,
        bridges={"bridge0": ("igb0",)},
    )
    return World(base, sim, config, TimedRunner(sim.env()))


def spec_text(
    i: int, *, tap: bool = False, state: str = "stopped", loader: str = "bhyveload"
) -> str:
    lines = [
        f'name = "g{i}"',
        f'state = "{state}"',
        f'loader = "{loader}"',
        "[[disk]]",
        f'path = "/vm/g{i}.img"',
        'size = "1G"',
    ]
    if tap:
        lines += ["[[nic]]", f'tap = "tap{i}"', 'bridge = "bridge0"']
    return "\n".join(lines) + "\n"


def write_specs(directory: Path, ids: range, **kw: object) -> None:
    for i in ids:
        path = directory / f"g{i}.toml"
        path.write_text(spec_text(i, **kw))  # type: ignore[arg-type]
        path.chmod(0o644)


def seed_network(world: World, n: int) -> None:
    """Give the simulated host bridge0 (with igb0) and tap0..tapN-1 in it, as if a person had
    made them: one host command each through the Python simulator would take minutes."""
    with st.Store(str(world.sim.root)) as store:
        state = store.state
        st.kld_load(state, "if_bridge.ko")
        interfaces = state["interfaces"]
        bridge = interfaces["bridge0"] = new_iface(state, "bridge")
        bridge["up"] = True
        for i in range(n):
            interfaces[f"tap{i}"] = new_iface(state, "tap")
            bridge["members"].append(f"tap{i}")
        bridge["members"].append("igb0")
        store.dirty = True


def rss_mb(pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def spread(values: Sequence[float], scale: float = 1000.0, unit: str = "ms") -> str:
    med = statistics.median(values) * scale
    return f"{med:.1f} {unit} (min {min(values) * scale:.1f}, max {max(values) * scale:.1f})"


def verdict(ok: bool) -> str:
    return "pass" if ok else "FAIL"


def drive(
    world: World,
    body: Callable[[Daemon], None],
    pass_cpu: list[float] | None = None,
    *,
    first_pass: bool = True,
    started: list[float] | None = None,
    setup: Callable[[Daemon], None] | None = None,
) -> Daemon:
    """Run the daemon's loop in this (main) thread and `body` in a second thread; when the
    body returns, detach the daemon (SIGUSR1: exit, leave guests as they are). `pass_cpu`
    collects the CPU time of every pass the loop runs; `first_pass`: the body starts once the
    daemon made its first pass; `started` gets the moment the daemon was made; `setup` is
    called on the daemon before it runs."""
    if started is not None:
        started.append(time.perf_counter())
    daemon = Daemon(world.config, world.host())
    if setup is not None:
        setup(daemon)
    if pass_cpu is not None:
        reconcile = daemon.reconcile

        def timed() -> None:
            start = time.process_time()
            reconcile()
            pass_cpu.append(time.process_time() - start)

        daemon.reconcile = timed  # type: ignore[method-assign]
    failure: list[BaseException] = []

    def target() -> None:
        try:
            deadline = time.monotonic() + 30
            while first_pass and daemon.passes == 0 and time.monotonic() < deadline:
                time.sleep(0.01)
            body(daemon)
        except BaseException as exc:  # re-raised in the main thread
            failure.append(exc)
        finally:
            os.kill(os.getpid(), signal.SIGUSR1)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    daemon.run()
    thread.join()
    if failure:
        raise failure[0]
    return daemon


def wait_until(cond: Callable[[], bool], timeout: float, step: float = 0.002) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return cond()
