"""The sparse copier: same content, holes kept, growth, and nothing left behind on any failure;
an existing disk is never touched."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from reconciler.host.sparse import (
    BLOCK,
    CopyCancelled,
    CopyError,
    Progress,
    TargetExists,
    copy_sparse,
    stale_temporaries,
)

KiB = 1 << 10
MiB = 1 << 20
SIZE = 48 * MiB
# (offset, length) of the data written into the source image; the rest are holes.
DATA = [(0, MiB + 3 * KiB), (20 * MiB, 256 * KiB), (SIZE - 128 * KiB, 128 * KiB)]


def write_sparse(path: Path, size: int, regions: list[tuple[int, int]]) -> None:
    with path.open("wb") as stream:
        stream.truncate(size)
        for offset, length in regions:
            stream.seek(offset)
            # Random data: no block of it is all zeros.
            stream.write(os.urandom(length))


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "images" / "cloud.raw"
    path.parent.mkdir()
    write_sparse(path, SIZE, DATA)
    if path.stat().st_blocks * 512 >= SIZE:
        pytest.skip("this file system keeps no holes")
    return path


@pytest.fixture
def disk(tmp_path: Path) -> Path:
    (tmp_path / "vm").mkdir()
    return tmp_path / "vm" / "disk0.img"


def digest(path: Path, length: int | None = None) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as stream:
        remaining = path.stat().st_size if length is None else length
        while remaining:
            chunk = stream.read(min(MiB, remaining))
            sha.update(chunk)
            remaining -= len(chunk)
    return sha.hexdigest()


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def allocated(path: Path) -> int:
    return path.stat().st_blocks * 512


@pytest.mark.parametrize("seek_holes", [True, False], ids=["seek-data", "zero-scan"])
def test_copy_keeps_content_and_holes(image: Path, disk: Path, seek_holes: bool) -> None:
    result = copy_sparse(image, disk, seek_holes=seek_holes)
    data = sum(length for _offset, length in DATA)
    assert digest(disk) == digest(image)
    assert disk.stat().st_size == SIZE
    assert stat.S_IMODE(disk.stat().st_mode) == 0o600  # a guest's disk is for root alone
    # About the same allocation as the image: the data, rounded to blocks, and no more.
    assert data <= allocated(disk) <= allocated(image) + 64 * KiB
    # Written whole blocks: the data rounded up to BLOCK, each region on its own.
    assert result.written_bytes == sum(-(-length // BLOCK) * BLOCK for _o, length in DATA)
    assert result.size == SIZE
    if not seek_holes:
        assert not result.found_holes
    if result.found_holes:
        assert result.data_bytes < SIZE
    else:
        assert result.data_bytes == SIZE
    assert leftovers(disk.parent) == ["disk0.img"]


def test_zero_blocks_inside_data_are_not_written(tmp_path: Path, disk: Path) -> None:
    # An image whose zeros were written out, as a converter may leave them: allocated, but
    # nothing to copy.
    source = tmp_path / "zeros.raw"
    with source.open("wb") as stream:
        stream.write(bytes(8 * MiB))
        stream.write(os.urandom(BLOCK))
        stream.write(bytes(3 * BLOCK + 100))
    result = copy_sparse(source, disk)
    assert digest(disk) == digest(source)
    assert result.written_bytes == BLOCK
    assert allocated(disk) <= 2 * BLOCK < allocated(source)


def test_grows_to_size_with_a_hole(image: Path, disk: Path) -> None:
    result = copy_sparse(image, disk, size=4 * SIZE)
    assert result.size == disk.stat().st_size == 4 * SIZE
    assert digest(disk, SIZE) == digest(image)
    with disk.open("rb") as stream:
        stream.seek(SIZE)
        assert stream.read(MiB) == bytes(MiB)
        stream.seek(4 * SIZE - MiB)
        assert stream.read() == bytes(MiB)
    assert allocated(disk) <= allocated(image) + 64 * KiB


def test_a_disk_smaller_than_the_image_is_refused(image: Path, disk: Path) -> None:
    with pytest.raises(CopyError, match="more than the disk's size") as caught:
        copy_sparse(image, disk, size=SIZE - MiB)
    assert not caught.value.temporary
    assert leftovers(disk.parent) == []


def test_an_existing_target_is_never_touched(image: Path, disk: Path) -> None:
    disk.write_bytes(b"a guest's data")
    before = disk.stat()
    with pytest.raises(TargetExists):
        copy_sparse(image, disk)
    after = disk.stat()
    assert disk.read_bytes() == b"a guest's data"
    assert (after.st_ino, after.st_mtime_ns, after.st_size) == (
        before.st_ino,
        before.st_mtime_ns,
        before.st_size,
    )
    assert leftovers(disk.parent) == ["disk0.img"]


def test_a_dangling_symlink_counts_as_existing(image: Path, disk: Path) -> None:
    disk.symlink_to(disk.parent / "elsewhere.img")
    with pytest.raises(TargetExists):
        copy_sparse(image, disk)
    assert not (disk.parent / "elsewhere.img").exists()


def test_a_target_that_appears_during_the_copy_is_kept(image: Path, disk: Path) -> None:
    def someone_else_creates_it(fd: int, data: memoryview, offset: int) -> int:
        if not disk.exists():
            disk.write_bytes(b"made meanwhile")
        return os.pwrite(fd, data, offset)

    with pytest.raises(TargetExists, match="appeared during the copy"):
        copy_sparse(image, disk, write=someone_else_creates_it)
    assert disk.read_bytes() == b"made meanwhile"
    assert leftovers(disk.parent) == ["disk0.img"]


def test_a_write_error_leaves_nothing(image: Path, disk: Path) -> None:
    calls = []

    def full_disk(fd: int, data: memoryview, offset: int) -> int:
        calls.append(offset)
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return os.pwrite(fd, data, offset)

    with pytest.raises(CopyError) as caught:
        copy_sparse(image, disk, write=full_disk)
    assert caught.value.errno == errno.ENOSPC
    assert caught.value.temporary  # space may be freed: a later pass tries again
    assert len(calls) == 2
    assert leftovers(disk.parent) == []


def test_a_short_write_is_completed(image: Path, disk: Path) -> None:
    def at_most_a_block(fd: int, data: memoryview, offset: int) -> int:
        return os.pwrite(fd, data[:BLOCK], offset)

    copy_sparse(image, disk, write=at_most_a_block)
    assert digest(disk) == digest(image)


CHILD = textwrap.dedent(
    """
    import json, resource, signal, sys
    from reconciler.host.sparse import CopyError, copy_sparse
    # Past RLIMIT_FSIZE a write or truncate fails with EFBIG once SIGXFSZ is ignored
    # (setrlimit(2)); it stands for a size beyond what the file system can hold.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[3]), int(sys.argv[3])))
    try:
        copy_sparse(sys.argv[1], sys.argv[2], size=int(sys.argv[4]))
    except CopyError as exc:
        print(json.dumps({"errno": exc.errno, "temporary": exc.temporary}))
    """
)


def test_a_size_beyond_the_file_size_limit_leaves_nothing(image: Path, disk: Path) -> None:
    limit = SIZE * 2
    argv = [sys.executable, "-c", CHILD, str(image), str(disk), str(limit), str(limit * 8)]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(out.stdout) == {"errno": errno.EFBIG, "temporary": False}
    assert leftovers(disk.parent) == []


class SteppingClock:
    """A clock that moves `step` seconds each time it is read."""

    def __init__(self, step: float) -> None:
        self.now = 0.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def test_progress_is_reported_at_a_bounded_rate(image: Path, disk: Path) -> None:
    reports: list[Progress] = []
    clock = SteppingClock(0.25)
    copy_sparse(
        image, disk, progress=reports.append, clock=clock, progress_interval=1.0, seek_holes=False
    )
    chunks = SIZE // MiB
    # One clock reading per chunk, a report at most every fourth one, and one at the end.
    assert 2 <= len(reports) <= chunks // 4 + 2
    assert [r.done for r in reports] == sorted(r.done for r in reports)
    assert reports[-1].done == reports[-1].total == SIZE
    assert all(r.total == SIZE and r.rate > 0 for r in reports)


def test_progress_counts_the_data_regions_only(image: Path, disk: Path) -> None:
    reports: list[Progress] = []
    result = copy_sparse(image, disk, progress=reports.append, clock=SteppingClock(1.0))
    if not result.found_holes:
        pytest.skip("the file system does not report holes")
    assert reports[-1].total == reports[-1].done == result.data_bytes < SIZE


def test_cancelled_from_the_progress_callback(image: Path, disk: Path) -> None:
    cancel = threading.Event()
    with pytest.raises(CopyCancelled):
        copy_sparse(
            image,
            disk,
            progress=lambda _p: cancel.set(),
            cancel=cancel,
            clock=SteppingClock(1.0),
            progress_interval=0.0,
        )
    assert leftovers(disk.parent) == []


def test_cancelled_in_a_worker_thread(image: Path, disk: Path) -> None:
    cancel = threading.Event()
    copying = threading.Event()
    outcome: list[BaseException] = []

    def on_progress(_progress: Progress) -> None:
        copying.set()
        # Holds the copy between two chunks until the main thread has cancelled it.
        cancel.wait(timeout=30)

    def work() -> None:
        try:
            copy_sparse(
                image,
                disk,
                progress=on_progress,
                cancel=cancel,
                progress_interval=0.0,
                seek_holes=False,
            )
        except BaseException as exc:  # the test reads it back in the main thread
            outcome.append(exc)

    worker = threading.Thread(target=work)
    worker.start()
    assert copying.wait(timeout=30)
    cancel.set()
    worker.join(timeout=30)
    assert not worker.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], CopyCancelled)
    assert outcome[0].temporary
    assert leftovers(disk.parent) == []


def test_bad_sources_and_targets(tmp_path: Path, image: Path, disk: Path) -> None:
    with pytest.raises(CopyError, match="cannot open the image"):
        copy_sparse(tmp_path / "missing.raw", disk)
    with pytest.raises(CopyError, match="not a regular file"):
        copy_sparse(tmp_path, disk)
    with pytest.raises(CopyError, match="cannot create a temporary file"):
        copy_sparse(image, tmp_path / "no-such-dir" / "disk0.img")
    assert leftovers(disk.parent) == []


def test_stale_temporaries(image: Path, disk: Path) -> None:
    stale = disk.parent / ".disk0.img.k2j4h1x9.partial"
    stale.write_bytes(b"left by a crash")
    (disk.parent / ".disk1.img.abcdefgh.partial").write_bytes(b"another disk's")
    (disk.parent / "disk0.img.partial").write_bytes(b"not ours")
    assert stale_temporaries(disk) == [stale]
    copy_sparse(image, disk)
    assert stale_temporaries(disk) == [stale]
    assert stale_temporaries(disk.parent / "missing" / "x.img") == []
