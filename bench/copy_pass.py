"""Cloud-image figures for bench/run.py: the sparse copy beside the disk's own speed, and a
daemon pass while a large copy runs beside the same pass without one.

    python bench/copy_pass.py [--quick]     # these figures alone

The copy: a 1 GiB image with 100 MiB of data, copied by `copy_sparse` and by a bare
pread/pwrite loop over the same data regions (the disk's own speed for that data), side by
side, alternating. The pass: 1,000 stopped guests with a tap each (the README's no-op pass)
plus one whose disk is being copied from a 4 GiB image in the daemon's copier thread; each timed
pass runs wholly while the copy does (a copy that ends is started again). CPU is the daemon
thread's own (`thread_time`), so the copier thread's work is not counted against the pass.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sparse_copy import make_image, read_write_regions, with_holes
from world import Row, make_world, seed_network, spread, verdict, write_specs

from reconciler.daemon import Daemon
from reconciler.host.copier import ImageCopier
from reconciler.log import configure_logging

MiB = 1 << 20
GiB = 1 << 30


def bench_copy_speed(tmp: Path, runs: int) -> list[Row]:
    image = tmp / "image.raw"
    regions = make_image(image, GiB, 100 * MiB)
    data = sum(length for _offset, length in regions)
    methods = {"copy_sparse": with_holes, "disk": read_write_regions(regions, GiB)}
    seconds: dict[str, list[float]] = {name: [] for name in methods}
    for run in range(runs):
        for name in list(methods)[run % 2 :] + list(methods)[: run % 2]:
            target = tmp / "disk.img"
            started = time.perf_counter()
            methods[name](image, target)
            seconds[name].append(time.perf_counter() - started)
            target.unlink()
    image.unlink()
    rate = {name: data / statistics.median(s) / 1e6 for name, s in seconds.items()}
    ratio = rate["copy_sparse"] / rate["disk"]
    return [
        (
            "copy 1 GiB image, 100 MiB data: copy_sparse",
            f"{rate['copy_sparse']:.0f} MB/s ({spread(seconds['copy_sparse'])})",
            "-",
            "-",
        ),
        (
            "the same data, bare pread/pwrite (the disk's own)",
            f"{rate['disk']:.0f} MB/s ({spread(seconds['disk'])})",
            "-",
            "-",
        ),
        ("copy_sparse / the disk's own speed", f"{ratio:.2f}x", ">= 0.8x", verdict(ratio >= 0.8)),
    ]


def bench_pass_during_copy(tmp: Path, repeat: int, guests: int = 1000) -> list[Row]:
    world = make_world(tmp / "copying")
    seed_network(world, guests)
    write_specs(world.conf_dir, range(guests), tap=True)
    source = world.sim.path("/vm/images/big.raw")
    source.parent.mkdir(parents=True)
    make_image(source, 4 * GiB, GiB)
    disk = world.sim.path("/vm/big/disk0.img")
    big = world.conf_dir / "big.toml"
    big.write_text(
        'name = "big"\nstate = "stopped"\n[[disk]]\npath = "/vm/big/disk0.img"\n'
        'source = "/vm/images/big.raw"\n'
    )
    big.chmod(0o644)
    daemon = Daemon(world.config, world.host())
    copier = ImageCopier(on_done=lambda path: None, retry_after=60.0)
    daemon.reconcile()  # converge, the copy included (apply copies while it waits)
    daemon.reconcile()
    quiet: list[float] = []
    during: list[float] = []
    quiet_wall: list[float] = []
    during_wall: list[float] = []
    daemon.host.copier = copier
    try:
        for _ in range(repeat):
            c0, w0 = time.thread_time(), time.perf_counter()
            daemon.reconcile()
            quiet.append(time.thread_time() - c0)
            quiet_wall.append(time.perf_counter() - w0)
        while len(during) < repeat:
            disk.unlink()
            daemon.reconcile()  # plans the copy: it starts in the copier thread
            while copier.copies():
                c0, w0 = time.thread_time(), time.perf_counter()
                daemon.reconcile()
                if copier.copies():  # the copy ran for the whole pass
                    during.append(time.thread_time() - c0)
                    during_wall.append(time.perf_counter() - w0)
            while not disk.exists():
                time.sleep(0.01)
            daemon.reconcile()
    finally:
        copier.stop()
    ratio = statistics.median(during) / statistics.median(quiet)
    return [
        (f"no-op pass, {guests} stopped guests: daemon thread CPU", spread(quiet), "-", "-"),
        (
            "the same pass during a 4 GiB image copy: daemon thread CPU",
            f"{spread(during)}, {ratio:.2f}x the no-op",
            "<= 30 ms (the no-op goal)",
            verdict(statistics.median(during) <= 0.030),
        ),
        (
            "the same pass during the copy: wall",
            f"{spread(during_wall)} (no-op {spread(quiet_wall)})",
            "-",
            "-",
        ),
    ]


def bench_copies(tmp: Path, repeat: int) -> list[Row]:
    return [*bench_copy_speed(tmp, repeat), *bench_pass_during_copy(tmp, repeat)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    args = parser.parse_args()
    configure_logging("json", level=40)
    with tempfile.TemporaryDirectory(prefix="bhyve-bench-copy-") as tmpdir:
        rows = bench_copies(Path(tmpdir), 5 if args.quick else 15)
    for row in rows:
        print("  ".join(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
