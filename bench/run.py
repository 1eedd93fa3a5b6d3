"""bhyve-reconciler benchmarks: speed, scale and memory on the simulated host.

    python bench/run.py            # every figure (about seven minutes)
    python bench/run.py --quick    # shorter idle window and fewer repetitions
    python bench/run.py --metrics  # only the metrics figures (a minute)

Prints one row per figure with its goal and pass/fail. Machines are shared and noisy, so each
timed figure is a median with its min-max over repetitions, and the daemon's own cost is
separated from the simulated host's (whose tools are Python programs, far slower to start than
FreeBSD's): the daemon's CPU comes from its own process accounting (children excluded), and
time spent waiting on simulated tools is measured at the Runner seam and reported apart.

The daemon runs in this process (its loop in the main thread, as in production, driven from a
second thread), so its CPU time and memory are this process's.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from prometheus_client import generate_latest

from reconciler.config import DaemonConfig
from reconciler.daemon import Daemon
from reconciler.host.exporter import MetricsExporter, start_exporter
from reconciler.host.freebsd import (
    OBSERVE_IFCONFIG,
    OBSERVE_KLDSTAT,
    OBSERVE_SYSCTL,
    FreeBSDHost,
)
from reconciler.host.runner import DEFAULT_TIMEOUT, Result, SubprocessRunner
from reconciler.log import configure_logging
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
    world: World, body: Callable[[Daemon], None], pass_cpu: list[float] | None = None
) -> Daemon:
    """Run the daemon's loop in this (main) thread and `body` in a second thread; when the
    body returns, detach the daemon (SIGUSR1: exit, leave guests as they are). `pass_cpu`
    collects the CPU time of every pass the loop runs."""
    daemon = Daemon(world.config, world.host())
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
            while daemon.passes == 0 and time.monotonic() < deadline:
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


# -- figures ------------------------------------------------------------------------------------


def bench_noop_passes(tmp: Path, repeat: int) -> list[Row]:
    rows: list[Row] = []
    counts: dict[int, int] = {}
    cpu_at: dict[int, float] = {}
    ratio_at: dict[int, float] = {}
    for n in (1, 100, 1000):
        world = make_world(tmp / f"noop{n}")
        seed_network(world, n)
        write_specs(world.conf_dir, range(n), tap=True)
        daemon = Daemon(world.config, world.host())
        daemon.reconcile()  # converge
        daemon.reconcile()
        cpu, wall, cmds, floor, ratio = [], [], [], [], []
        for _ in range(repeat):
            # A pass, then its floor right after, so both see the same (noisy) machine.
            before = world.runner.commands_run
            c0, w0 = time.process_time(), time.perf_counter()
            daemon.reconcile()
            cpu.append(time.process_time() - c0)
            wall.append(time.perf_counter() - w0)
            cmds.append(world.runner.commands_run - before)
            w0 = time.perf_counter()
            for argv in (OBSERVE_KLDSTAT, OBSERVE_SYSCTL, OBSERVE_IFCONFIG):
                world.runner.run(argv)
            floor.append(time.perf_counter() - w0)
            ratio.append(wall[-1] / floor[-1])
        counts[n] = max(cmds)
        cpu_at[n] = statistics.median(cpu)
        ratio_at[n] = statistics.median(ratio)
        rows.append(
            (
                f"no-op pass, {n} guests: daemon CPU",
                spread(cpu),
                "<= 30 ms at 1,000",
                verdict(n < 1000 or cpu_at[n] <= 0.030),
            )
        )
        rows.append((f"no-op pass, {n} guests: wall", spread(wall), "-", "-"))
        rows.append(
            (
                f"no-op pass, {n} guests: wall / observe floor",
                f"{ratio_at[n]:.2f}x (floor {spread(floor)})",
                "<= 1.5x",
                verdict(ratio_at[n] <= 1.5),
            )
        )
    rows.append(
        (
            "host commands per no-op pass",
            f"{counts[1]} at 1, {counts[1000]} at 1,000",
            "same, <= 8",
            verdict(counts[1] == counts[1000] <= 8),
        )
    )
    return rows


def bench_metrics(tmp: Path, repeat: int, n: int = 1000) -> list[Row]:
    """The no-op pass at n guests with metrics on (/metrics served on loopback, metrics_file
    written by its thread), beside the same pass with metrics off, alternating so both see
    the same noisy machine; then what a scrape and a file write cost, which no pass pays."""
    daemons: dict[str, Daemon] = {}
    exporters: list[MetricsExporter] = []
    for label in ("off", "on"):
        world = make_world(tmp / f"metrics-{label}")
        if label == "on":
            world.config = replace(
                world.config,
                metrics_listen="127.0.0.1:0",
                metrics_file=tmp / "metrics.prom",
            )
        seed_network(world, n)
        write_specs(world.conf_dir, range(n), tap=True)
        daemon = daemons[label] = Daemon(world.config, world.host())
        exporter = start_exporter(daemon.metrics, world.config)
        if exporter is not None:
            exporters.append(exporter)
        daemon.reconcile()  # converge
        daemon.reconcile()
    cpu: dict[str, list[float]] = {"off": [], "on": []}
    try:
        for _ in range(repeat):
            for label, daemon in daemons.items():
                c0 = time.process_time()
                daemon.reconcile()
                cpu[label].append(time.process_time() - c0)
        metrics = daemons["on"].metrics
        assert metrics is not None and exporters[0].address is not None
        scrape, write, http = [], [], []
        url = f"http://127.0.0.1:{exporters[0].address[1]}/metrics"
        for _ in range(repeat):
            c0 = time.process_time()
            text = generate_latest(metrics.registry)
            scrape.append(time.process_time() - c0)
            w0 = time.perf_counter()
            exporters[0].write_file()
            write.append(time.perf_counter() - w0)
            w0 = time.perf_counter()
            with urllib.request.urlopen(url, timeout=30) as response:
                response.read()
            http.append(time.perf_counter() - w0)
    finally:
        for exporter in exporters:
            exporter.stop()
    off, on = statistics.median(cpu["off"]), statistics.median(cpu["on"])
    return [
        (f"no-op pass, {n} guests, metrics off: daemon CPU", spread(cpu["off"]), "-", "-"),
        (
            f"no-op pass, {n} guests, metrics on: daemon CPU",
            spread(cpu["on"]),
            "within 1 ms of off",
            verdict(on <= off + 0.001),
        ),
        (
            f"metrics for {n} guests: building the exposition (a scrape)",
            f"{spread(scrape)}, {len(text) // 1024} KiB",
            "-",
            "-",
        ),
        (f"  /metrics over HTTP, {n} guests (wall)", spread(http), "-", "-"),
        (f"  metrics_file rewrite, {n} guests (wall)", spread(write), "-", "-"),
    ]


def bench_drop_latency(tmp: Path, drops: int) -> list[Row]:
    world = make_world(tmp / "drop")
    staging = tmp / "drop-staging"
    staging.mkdir()
    write_specs(staging, range(drops), tap=True)
    measured: list[float] = []
    own: list[float] = []

    def body(daemon: Daemon) -> None:
        for i in range(drops):
            argv = ("ifconfig", f"tap{i}", "create")
            seen = len(world.runner.log)

            def ran(argv: tuple[str, ...] = argv, seen: int = seen) -> bool:
                return any(c == argv for _, _, c in world.runner.log[seen:])

            t0 = time.perf_counter()
            os.rename(staging / f"g{i}.toml", world.conf_dir / f"g{i}.toml")
            if not wait_until(ran, 10):
                raise RuntimeError(f"no {argv} within 10 s")
            start = next(s for s, _, c in world.runner.log[seen:] if c == argv)
            measured.append(start - t0)
            own.append(start - t0 - world.runner.seconds_between(t0, start))
            time.sleep(0.02)

    drive(world, body)
    p = statistics.quantiles(own, n=100)
    q = statistics.quantiles(measured, n=100)
    return [
        (
            "file dropped -> first host action (daemon)",
            f"p50 {p[49] * 1000:.1f} ms, p99 {p[98] * 1000:.1f} ms",
            "p99 <= 100 ms",
            verdict(p[98] <= 0.100),
        ),
        (
            "  same, incl. simulated tools' time",
            f"p50 {q[49] * 1000:.1f} ms, p99 {q[98] * 1000:.1f} ms",
            "-",
            "-",
        ),
    ]


def bench_burst(tmp: Path, n: int) -> list[Row]:
    world = make_world(tmp / "burst")
    staging = tmp / "burst-staging"
    staging.mkdir()
    write_specs(staging, range(n))
    result: dict[str, float] = {}

    def body(daemon: Daemon) -> None:
        passes0 = daemon.passes
        t0 = time.perf_counter()
        for i in range(n):
            os.rename(staging / f"g{i}.toml", world.conf_dir / f"g{i}.toml")

        def converged() -> bool:
            return len(daemon.ledger.disks) == n and len(daemon.supervisors) == n

        if not wait_until(converged, 120, step=0.01):
            raise RuntimeError("burst did not converge in 120 s")
        result["wall"] = time.perf_counter() - t0
        result["passes"] = daemon.passes - passes0

    drive(world, body)
    return [
        (
            f"{n} files renamed in at once -> converged",
            f"{result['wall']:.2f} s, {int(result['passes'])} passes",
            "<= 20 passes",
            verdict(result["passes"] <= 20),
        )
    ]


def bench_idle(tmp: Path, n: int, window: float) -> list[Row]:
    """n running guests (UEFI: no loader to simulate), each with a tap in bridge0."""
    world = make_world(tmp / "idle")
    seed_network(world, n)
    write_specs(world.conf_dir, range(n), tap=True, state="running", loader="uefi")
    result: dict[str, float] = {}
    records = world.config.run_dir / "guests"
    pass_cpu: list[float] = []

    def body(daemon: Daemon) -> None:
        def all_running() -> bool:
            return len(daemon.supervisors) == n and all(
                s.state == "running" for s in daemon.supervisors
            )

        if not wait_until(all_running, 600, step=0.5):
            raise RuntimeError(f"{n} guests did not all start in 600 s")
        time.sleep(2.0)
        del pass_cpu[:]
        t0, c0 = time.perf_counter(), time.process_time()
        ch0 = os.times().children_user + os.times().children_system
        time.sleep(window)
        result["cpu"] = (time.process_time() - c0) / (time.perf_counter() - t0)
        ch = os.times().children_user + os.times().children_system - ch0
        result["children"] = ch / window
        result["rss"] = rss_mb()
        for _ in range(10):  # more no-op passes to time: SIGHUP re-reads the config and passes
            done = len(pass_cpu)

            def passed(done: int = done) -> bool:
                return len(pass_cpu) > done

            os.kill(os.getpid(), signal.SIGHUP)
            wait_until(passed, 30, step=0.05)
            time.sleep(0.5)

    try:
        drive(world, body, pass_cpu)  # detaches at the end: the guests keep running
    finally:
        for shim in records.glob("*/shim.pid"):  # then every boot goes, at once
            with contextlib.suppress(OSError, ValueError):
                os.killpg(int(shim.read_text()), signal.SIGKILL)
    return [
        (
            f"no-op pass, {n} running guests (a tap each): daemon CPU",
            spread(pass_cpu) if pass_cpu else "no pass in the window",
            "<= 30 ms at 1,000",
            verdict(bool(pass_cpu) and statistics.median(pass_cpu) <= 0.030),
        ),
        (
            f"idle daemon, {n} running guests, {window:.0f} s window",
            f"{result['cpu'] * 100:.3f} % CPU (simulated tools {result['children'] * 100:.3f} %)",
            "< 0.5 %",
            verdict(result["cpu"] < 0.005),
        ),
        (
            f"daemon memory at {n} running guests",
            f"{result['rss']:.1f} MB RSS",
            "<= 60 MB",
            verdict(result["rss"] <= 60),
        ),
    ]


def bench_memory_empty(tmp: Path) -> list[Row]:
    world = make_world(tmp / "empty")
    result: dict[str, float] = {}

    def body(daemon: Daemon) -> None:
        time.sleep(0.5)
        result["rss"] = rss_mb()

    drive(world, body)
    return [("daemon memory at 0 guests", f"{result['rss']:.1f} MB RSS", "-", "-")]


def bench_shim(tmp: Path, guests: int) -> list[Row]:
    world = make_world(tmp / "shim")
    write_specs(world.conf_dir, range(guests), state="running")
    sizes: list[float] = []

    def body(daemon: Daemon) -> None:
        records = world.config.run_dir / "guests"
        if not wait_until(
            lambda: all((records / f"g{i}" / "bhyve.pid").exists() for i in range(guests)),
            30,
            step=0.05,
        ):
            raise RuntimeError("guests did not start")
        for i in range(guests):
            pid = (records / f"g{i}" / "shim.pid").read_text().strip()
            sizes.append(rss_mb(pid))
        os.kill(os.getpid(), signal.SIGTERM)  # stop the guests before detaching

    drive(world, body)
    return [
        (
            "per-guest shim (POSIX sh)",
            f"{statistics.median(sizes):.2f} MB RSS (max {max(sizes):.2f}, {guests} guests)",
            "<= 4 MB",
            verdict(max(sizes) <= 4),
        )
    ]


def bench_validate(tmp: Path, n: int, repeat: int) -> list[Row]:
    conf = tmp / "validate"
    conf.mkdir(mode=0o755)
    write_specs(conf, range(n), tap=True)
    walls = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "reconciler", "--conf-dir", str(conf), "validate"],
            capture_output=True,
            text=True,
            check=False,
        )
        walls.append(time.perf_counter() - t0)
        if done.returncode != 0:
            raise RuntimeError(done.stdout[-500:] + done.stderr[-500:])
    return [
        (
            f"validate of {n} files (whole command)",
            spread(walls, 1.0, "s"),
            "<= 1 s",
            verdict(statistics.median(walls) <= 1.0),
        )
    ]


def all_figures(tmp: Path, repeat: int, *, quick: bool) -> list[Row]:
    rows = bench_noop_passes(tmp, repeat)
    rows += bench_metrics(tmp, repeat)
    rows += bench_drop_latency(tmp, 30 if quick else 100)
    rows += bench_burst(tmp, 1000)
    rows += bench_memory_empty(tmp)
    rows += bench_idle(tmp, 1000, 15.0 if quick else 60.0)
    rows += bench_shim(tmp, 5)
    rows += bench_validate(tmp, 1000, 3 if quick else 5)
    from copy_pass import bench_copies  # it imports this module's helpers

    rows += bench_copies(tmp, repeat)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter windows, fewer repeats")
    parser.add_argument("--metrics", action="store_true", help="only the metrics figures")
    args = parser.parse_args()
    configure_logging("json", level=40)  # errors only: the figures are the output
    repeat = 5 if args.quick else 15
    with tempfile.TemporaryDirectory(prefix="bhyve-bench-") as tmpdir:
        tmp = Path(tmpdir)
        if args.metrics:
            rows = bench_metrics(tmp, repeat)
        else:
            rows = all_figures(tmp, repeat, quick=args.quick)
    width = [max(len(r[i]) for r in rows) for i in range(3)]
    header = ("figure", "measured", "goal", "")
    print("  ".join(h.ljust(w) for h, w in zip(header, [*width, 4], strict=False)))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, [*width, 4], strict=False)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
