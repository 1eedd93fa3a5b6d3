"""bhyve-reconciler benchmarks: speed, scale and memory on the simulated host.

    python bench/run.py            # every figure (about eight minutes)
    python bench/run.py --quick    # fewer repetitions and file drops (the idle window stays 60 s)
    python bench/run.py --metrics  # only the metrics figures (a minute)

Prints one row per figure with its goal and pass/fail. Machines are shared and noisy, so each
timed figure is a median with its min-max over repetitions, and the daemon's own cost is
separated from the simulated host's (whose tools are Python programs, far slower to start than
FreeBSD's): the daemon's CPU comes from its own process accounting (children excluded), and
time spent waiting on simulated tools is measured at the Runner seam and reported apart.

The daemon runs in this process (its loop in the main thread, as in production, driven from a
second thread), so its CPU time and memory are this process's. The memory and adoption figures
come from a fresh process (`--part memory`), which has imported nothing the daemon does not
and carries no other figure's heap: a daemon's memory, not the benchmark's.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from running import bench_rewalk, bench_running
from world import (
    Row,
    drive,
    make_world,
    rss_mb,
    seed_network,
    spread,
    verdict,
    wait_until,
    write_specs,
)

from reconciler.daemon import Daemon
from reconciler.host.files import load_ledger
from reconciler.host.freebsd import OBSERVE_IFCONFIG, OBSERVE_KLDSTAT, OBSERVE_SYSCTL
from reconciler.log import configure_logging

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
    state_dir = world.config.state_dir

    def body(daemon: Daemon) -> None:
        passes0 = daemon.passes
        t0 = time.perf_counter()
        for i in range(n):
            os.rename(staging / f"g{i}.toml", world.conf_dir / f"g{i}.toml")

        def converged() -> bool:
            return len(daemon.supervisors) == n and len(load_ledger(state_dir).disks) == n

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
    from copy_pass import bench_copies

    rows = bench_noop_passes(tmp, repeat)
    rows += bench_drop_latency(tmp, 30 if quick else 100)
    rows += bench_burst(tmp, 1000)
    rows += in_fresh_process("memory")
    rows += bench_rewalk(tmp, 1000, repeat)
    rows += bench_shim(tmp, 5)
    rows += bench_validate(tmp, 1000, 3 if quick else 5)
    rows += bench_copies(tmp, repeat)
    # Last: the daemon is this process, and a 1,000-guest exposition raises its high-water
    # mark, which the memory figures above would otherwise carry.
    from metrics_pass import bench_metrics

    rows += bench_metrics(tmp, repeat)
    return rows


PARTS = {
    # The daemon's memory with nothing and with 1,000 running guests, and the adoption of
    # those guests by a new daemon; at least a minute of idle window, even --quick.
    "memory": lambda tmp: bench_memory_empty(tmp) + bench_running(tmp, 1000, 60.0),
}


def in_fresh_process(part: str) -> list[Row]:
    """The rows of `run.py --part PART`, run in a new interpreter."""
    done = subprocess.run(
        [sys.executable, __file__, "--part", part],
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    )
    return [(a, b, c, d) for a, b, c, d in json.loads(done.stdout)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter windows, fewer repeats")
    parser.add_argument("--metrics", action="store_true", help="only the metrics figures")
    parser.add_argument("--part", choices=sorted(PARTS), help=argparse.SUPPRESS)  # JSON rows
    args = parser.parse_args()
    configure_logging("json", level=40)  # errors only: the figures are the output
    repeat = 5 if args.quick else 15
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bhyve-bench-") as tmpdir:
        tmp = Path(tmpdir)
        if args.part:
            print(json.dumps(PARTS[args.part](tmp)))
            return 0
        if args.metrics:
            from metrics_pass import bench_metrics

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
