"""Copying a raw disk image into a new disk file, holes kept as holes, never over an existing one.

Edge: this is the one place a disk is filled from an image. The copy goes to a temporary name
beside the target (`.NAME.XXXX.partial`), is grown to the asked size, flushed with fsync, and
only then given the target's name with link(2), which fails rather than replace a file that
appeared meanwhile; the temporary name is then unlinked. So the target name never holds a
partial disk, an existing disk is never touched (DESIGN.md rule 1), and any failure or
cancellation removes the temporary. It keeps no state between calls, so it may run in a worker
thread; the progress callback is called in that thread.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from reconciler.errors import ReconcilerError

CHUNK = 1 << 20
# Zero detection works on 4 KiB blocks: the block size of UFS, ext4 and most file systems, and
# a divisor of every ZFS recordsize, so no hole a file system could keep is missed.
BLOCK = 4096
PROGRESS_INTERVAL = 0.5  # seconds between two progress reports, at most
# Retried by a later pass: space may be freed, a quota raised.
_TEMPORARY_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EINTR, errno.EAGAIN})
# lseek(2) with SEEK_DATA on a file system that cannot tell: EINVAL (Linux, FreeBSD's
# lseek(2) ERRORS), ENOTTY or EOPNOTSUPP where a driver lacks the ioctl behind it.
_NO_SEEK_HOLE = frozenset({errno.EINVAL, errno.ENOTTY, errno.EOPNOTSUPP, errno.ENOTSUP})


class CopyError(ReconcilerError):
    """A disk could not be made from an image; nothing is left under the target's name."""

    def __init__(self, target: str, message: str, *, errno_: int | None = None) -> None:
        self.target = target
        self.message = message
        self.errno = errno_
        self.temporary = errno_ in _TEMPORARY_ERRNOS
        super().__init__(f"{target}: {message}")


class TargetExists(CopyError):
    """The target already exists; it was not touched."""


class CopyCancelled(CopyError):
    """The copy was cancelled between two chunks; its temporary is removed."""

    def __init__(self, target: str) -> None:
        super().__init__(target, "copy cancelled")
        self.temporary = True


@dataclass(frozen=True)
class Progress:
    """`done` of `total` bytes of image data read; `rate` in bytes per second since the start.

    `total` counts the image's data regions only where the file system can tell holes apart
    (SEEK_DATA), else the whole image.
    """

    done: int
    total: int
    rate: float


@dataclass(frozen=True)
class CopyResult:
    target: str
    size: int  # the disk's size in bytes
    data_bytes: int  # bytes read from the image's data regions
    written_bytes: int  # bytes written: data that was not all zeros
    seconds: float
    found_holes: bool  # whether the file system told where the image's holes are


class CancelFlag(Protocol):
    """What `copy_sparse` checks between chunks; a `threading.Event` is one."""

    def is_set(self) -> bool: ...


Writer = Callable[[int, memoryview, int], int]  # os.pwrite's shape: (fd, data, offset) -> count


def copy_sparse(
    source: str | os.PathLike[str],
    target: str | os.PathLike[str],
    *,
    size: int | None = None,
    progress: Callable[[Progress], None] | None = None,
    cancel: CancelFlag | None = None,
    clock: Callable[[], float] = time.monotonic,
    progress_interval: float = PROGRESS_INTERVAL,
    seek_holes: bool = True,
    write: Writer = os.pwrite,
) -> CopyResult:
    """Copy the raw image `source` into the new file `target`, grown to `size` bytes if larger.

    Raises `TargetExists` if `target` exists (before or at the end), `CopyCancelled` when
    `cancel` is set, and `CopyError` for anything else (ENOSPC, EFBIG, an image larger than
    `size`, ...). `seek_holes=False` finds holes by reading zeros only; `write` is the pwrite
    seam, for tests.
    """
    src, dst = os.fspath(source), os.fspath(target)
    if os.path.lexists(dst):
        raise TargetExists(dst, "already exists; an existing disk is never overwritten")
    started = clock()
    try:
        src_fd = os.open(src, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise CopyError(
            dst, f"cannot open the image {src}: {exc.strerror}", errno_=exc.errno
        ) from exc
    try:
        image_size = _image_size(src_fd, src, dst)
        disk_size = image_size if size is None else size
        if disk_size < image_size:
            raise CopyError(
                dst, f"the image has {image_size} bytes, more than the disk's size {disk_size}"
            )
        copy = _Copy(src_fd, dst, write, cancel, _Reporter(progress, clock, progress_interval))
        copy.run(image_size, disk_size, seek_holes)
    finally:
        os.close(src_fd)
    return CopyResult(
        target=dst,
        size=disk_size,
        data_bytes=copy.done,
        written_bytes=copy.written,
        seconds=clock() - started,
        found_holes=copy.found_holes,
    )


def _image_size(fd: int, src: str, dst: str) -> int:
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise CopyError(dst, f"the image {src} is not a regular file")
    return info.st_size


class _Reporter:
    """Calls back at most once per `interval` of the injected clock, and once at the end."""

    def __init__(
        self,
        callback: Callable[[Progress], None] | None,
        clock: Callable[[], float],
        interval: float,
    ) -> None:
        self.callback = callback
        self.clock = clock
        self.interval = interval
        self.start = clock()
        self.last = self.start
        self.total = 0

    def update(self, done: int, *, final: bool = False) -> None:
        if self.callback is None:
            return
        now = self.clock()
        if not final and now - self.last < self.interval:
            return
        self.last = now
        elapsed = now - self.start
        self.callback(Progress(done, self.total, done / elapsed if elapsed > 0 else 0.0))


class _Copy:
    """One copy in flight: the temporary's name and descriptor, and the counts so far."""

    def __init__(
        self,
        src_fd: int,
        target: str,
        write: Writer,
        cancel: CancelFlag | None,
        reporter: _Reporter,
    ) -> None:
        self.src_fd = src_fd
        self.target = target
        self.write = write
        self.cancel = cancel
        self.reporter = reporter
        self.done = 0
        self.written = 0
        self.found_holes = False
        self.buffer = bytearray(CHUNK)
        self.zero_block = bytes(BLOCK)
        self.zero_chunk = bytes(CHUNK)

    def run(self, image_size: int, disk_size: int, seek_holes: bool) -> None:
        path = Path(self.target)
        try:
            # O_EXCL and mode 0600: a guest's disk is for root alone, from its first byte.
            fd, temporary = tempfile.mkstemp(
                prefix=f".{path.name}.", suffix=".partial", dir=path.parent
            )
        except OSError as exc:
            raise self._error(exc, "cannot create a temporary file beside it") from exc
        try:
            try:
                # Sized first: a size the file system cannot hold fails before any copying,
                # and whatever is not written stays a hole.
                os.ftruncate(fd, disk_size)
                self._copy_data(fd, image_size, seek_holes)
                os.fsync(fd)
            finally:
                os.close(fd)
            _link_into_place(temporary, self.target)
        except OSError as exc:
            raise self._error(exc, "copy failed") from exc
        finally:
            _unlink_quietly(temporary)

    def _error(self, exc: OSError, what: str) -> CopyError:
        return CopyError(self.target, f"{what}: {exc.strerror or exc}", errno_=exc.errno)

    def _copy_data(self, fd: int, image_size: int, seek_holes: bool) -> None:
        regions = _data_regions(self.src_fd, image_size) if seek_holes else None
        self.found_holes = regions is not None
        if regions is None:
            regions = [(0, image_size)]
        self.reporter.total = sum(end - start for start, end in regions)
        if hasattr(os, "posix_fadvise"):
            with contextlib.suppress(OSError):  # a hint only
                os.posix_fadvise(self.src_fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
        view = memoryview(self.buffer)
        for start, end in regions:
            offset = start
            while offset < end:
                if self.cancel is not None and self.cancel.is_set():
                    raise CopyCancelled(self.target)
                count = os.preadv(self.src_fd, [view[: min(CHUNK, end - offset)]], offset)
                if count == 0:
                    raise CopyError(self.target, "the image shrank while it was being copied")
                self._write_data(fd, view, count, offset)
                offset += count
                self.done += count
                self.reporter.update(self.done)
        self.reporter.update(self.done, final=True)

    def _write_data(self, fd: int, view: memoryview, count: int, offset: int) -> None:
        if count == CHUNK and self.buffer.startswith(self.zero_chunk):
            return
        for start, end in _nonzero_runs(self.buffer, count, self.zero_block):
            position = start
            while position < end:
                count = self.write(fd, view[position:end], offset + position)
                if count <= 0:
                    raise OSError(errno.EIO, "write made no progress")
                position += count
            self.written += end - start


def _nonzero_runs(buffer: bytearray, count: int, zero_block: bytes) -> Iterator[tuple[int, int]]:
    """(start, end) of each run of `BLOCK`s in `buffer[:count]` holding a non-zero byte."""
    run_start: int | None = None
    for start in range(0, count, BLOCK):
        length = min(BLOCK, count - start)
        zero = zero_block if length == BLOCK else bytes(length)
        if buffer.startswith(zero, start):
            if run_start is not None:
                yield run_start, start
                run_start = None
        elif run_start is None:
            run_start = start
    if run_start is not None:
        yield run_start, count


def _data_regions(fd: int, size: int) -> list[tuple[int, int]] | None:
    """The (start, end) data regions of a file, from lseek(2) SEEK_DATA/SEEK_HOLE; None when
    the system or file system cannot tell."""
    seek_data = getattr(os, "SEEK_DATA", None)
    seek_hole = getattr(os, "SEEK_HOLE", None)
    if seek_data is None or seek_hole is None:
        return None
    regions = []
    offset = 0
    while offset < size:
        try:
            start = os.lseek(fd, offset, seek_data)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # lseek(2): no data at or after offset
                break
            if exc.errno in _NO_SEEK_HOLE:
                return None
            raise
        end = min(os.lseek(fd, start, seek_hole), size)
        if end <= start:
            break
        regions.append((start, end))
        offset = end
    return regions


def _link_into_place(temporary: str, target: str) -> None:
    try:
        # link(2) fails with EEXIST rather than replace: unlike rename(2), it cannot clobber a
        # disk that appeared while this one was copied.
        os.link(temporary, target)
    except FileExistsError as exc:
        raise TargetExists(target, "appeared during the copy; it was left as it was") from exc
    except OSError as exc:
        if exc.errno in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK):
            raise CopyError(
                target,
                "the file system does not take hard links, which a disk is moved into place with",
                errno_=exc.errno,
            ) from exc
        raise
    _fsync_directory(str(Path(target).parent))


def _fsync_directory(directory: str) -> None:
    # Makes the new name durable. The disk is complete and in place by now, so a directory
    # that cannot be synced (some file systems refuse fsync on one) is no reason to fail.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _unlink_quietly(path: str) -> None:
    # Cleaning up must not hide the error being raised; `stale_temporaries` finds what is left.
    with contextlib.suppress(OSError):
        os.unlink(path)


def stale_temporaries(target: str | os.PathLike[str]) -> list[Path]:
    """Temporary files of copies to `target`: what crashed copies left, when none is running."""
    path = Path(target)
    if not path.parent.is_dir():
        return []
    return sorted(path.parent.glob(f".{_glob_escape(path.name)}.*.partial"))


def _glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def read_probe(path: str | os.PathLike[str], head: int, tail: int) -> tuple[bytes, bytes, int]:
    """The first `head` and last `tail` bytes of a file and its size, for images.detect_image."""
    with open(path, "rb") as stream:
        size = os.fstat(stream.fileno()).st_size
        first = stream.read(head)
        stream.seek(max(0, size - tail))
        last = stream.read(tail)
    return first, last, size
