"""How fast `copy_sparse` fills a disk from a sparse cloud image, beside the disk's own speed.

    python bench/sparse_copy.py                  # 1 GiB image, 100 MiB of data, 5 runs
    python bench/sparse_copy.py --runs 9 --dir /vm/tmp

Builds a sparse raw image (random data at both ends and in runs between, holes elsewhere) and
copies it, each run, with:

  copy_sparse            this project's copier, holes found with SEEK_DATA/SEEK_HOLE
  copy_sparse zero-scan  the same, reading every byte and skipping all-zero blocks
  read/write regions     a bare os.pread/os.pwrite loop over the same data regions: the speed
                         of the disk itself for this data, with nothing else done
  cp --sparse=always     GNU cp, where it exists

Every method ends with fsync, and every copy is checked against the image once. The image is
in the page cache for all of them alike. Figures are medians over the runs, with min-max, in
seconds, MB/s of data copied, and MB/s of image covered. Not a test: it prints.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from reconciler.host.sparse import copy_sparse
from reconciler.units import parse_size

MiB = 1 << 20
Method = Callable[[Path, Path], None]


def make_image(path: Path, size: int, data: int) -> list[tuple[int, int]]:
    """A sparse image of `size` bytes with `data` bytes of random data; its data regions."""
    run = 4 * MiB
    count = max(2, data // run)
    stride = (size - run) // (count - 1)
    regions = [(i * stride, run) for i in range(count - 1)] + [(size - run, run)]
    with path.open("wb") as stream:
        stream.truncate(size)
        for offset, length in regions:
            stream.seek(offset)
            stream.write(os.urandom(length))
    return regions


def with_holes(source: Path, target: Path) -> None:
    copy_sparse(source, target)


def zero_scan(source: Path, target: Path) -> None:
    copy_sparse(source, target, seek_holes=False)


def read_write_regions(regions: list[tuple[int, int]], size: int) -> Method:
    def copy(source: Path, target: Path) -> None:
        src = os.open(source, os.O_RDONLY)
        dst = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.ftruncate(dst, size)
            for offset, length in regions:
                done = 0
                while done < length:
                    chunk = os.pread(src, min(MiB, length - done), offset + done)
                    os.pwrite(dst, chunk, offset + done)
                    done += len(chunk)
            os.fsync(dst)
        finally:
            os.close(src)
            os.close(dst)

    return copy


def gnu_cp(source: Path, target: Path) -> None:
    subprocess.run(["cp", "--sparse=always", str(source), str(target)], check=True)
    fd = os.open(target, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def has_gnu_cp() -> bool:
    if shutil.which("cp") is None:
        return False
    probe = subprocess.run(["cp", "--sparse=always", "--version"], capture_output=True)
    return probe.returncode == 0


def digest(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(8 * MiB):
            sha.update(chunk)
    return sha.hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="1G", help="image size (default 1G)")
    parser.add_argument("--data", default="100M", help="data in the image (default 100M)")
    parser.add_argument("--runs", type=int, default=5, help="runs of each method (default 5)")
    parser.add_argument("--dir", default=None, help="where to write (default: a temp dir)")
    args = parser.parse_args(argv)
    size, data = parse_size(args.size), parse_size(args.data)

    with tempfile.TemporaryDirectory(dir=args.dir, prefix="sparse-bench.") as scratch:
        root = Path(scratch)
        image = root / "image.raw"
        regions = make_image(image, size, data)
        data = sum(length for _offset, length in regions)
        methods: dict[str, Method] = {
            "copy_sparse": with_holes,
            "copy_sparse zero-scan": zero_scan,
            "read/write regions": read_write_regions(regions, size),
        }
        if has_gnu_cp():
            methods["cp --sparse=always"] = gnu_cp
        expected = digest(image)
        times: dict[str, list[float]] = {name: [] for name in methods}
        allocated: dict[str, int] = {}
        names = list(methods)
        for run in range(args.runs):
            # A different order each run, so no method always runs right after another.
            for name in names[run % len(names) :] + names[: run % len(names)]:
                target = root / "disk.img"
                started = time.perf_counter()
                methods[name](image, target)
                times[name].append(time.perf_counter() - started)
                if run == 0:
                    if digest(target) != expected:
                        print(f"{name}: the copy differs from the image", file=sys.stderr)
                        return 1
                    allocated[name] = target.stat().st_blocks * 512
                target.unlink()
        image_allocated = image.stat().st_blocks * 512

    print(
        f"image: {size / MiB:.0f} MiB with {data / MiB:.0f} MiB of data "
        f"({image_allocated / MiB:.1f} MiB allocated), {args.runs} runs, median (min-max)"
    )
    header = f"{'method':<24}{'seconds':>24}{'MB/s data':>12}{'MB/s image':>12}{'allocated':>12}"
    print(header)
    print("-" * len(header))
    for name, seconds in times.items():
        median = statistics.median(seconds)
        spread = f"{median:.3f} ({min(seconds):.3f}-{max(seconds):.3f})"
        print(
            f"{name:<24}{spread:>24}{data / median / 1e6:>12.0f}{size / median / 1e6:>12.0f}"
            f"{allocated[name] / MiB:>10.1f} M"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
