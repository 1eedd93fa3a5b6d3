"""The daemon's background copies of images into new disks: one worker thread per copy, so a
large image never holds up a pass (other guests' boots and stops go on meanwhile).

Edge. A pass plans `CopyImage`, the driver hands it here (`start`), and later passes see the
copy in flight (`copies()`, as `HostFacts.copies`) until the disk appears under its name; then
`on_done` wakes the daemon for the pass that boots the guest. A failed copy is remembered for
`retry_after` seconds (the next resync tries again; a full disk does not spin the daemon).
What a crash leaves is the copy's temporary beside the disk, with the disk already in the
ledger (written ahead): the next copy to that disk, or the ledger's forgetting of it, sweeps
the temporary (host/diskprep.py). `stop` cancels every copy (each removes its temporary)
and waits for the threads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import structlog

from reconciler.facts import DiskCopy
from reconciler.host.diskprep import sweep_temporaries
from reconciler.host.sparse import (
    CopyCancelled,
    CopyError,
    Progress,
    TargetExists,
    copy_sparse,
)
from reconciler.imageactions import CopyImage

log = structlog.get_logger("reconciler.copy")

MIB = 1 << 20


class ImageCopier:
    def __init__(
        self,
        *,
        on_done: Callable[[str], None],
        retry_after: float,
        progress_interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._on_done = on_done
        self.retry_after = retry_after
        self._progress_interval = progress_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._running: dict[str, tuple[DiskCopy, threading.Thread, threading.Event]] = {}
        self._failed: dict[str, tuple[DiskCopy, float]] = {}

    def start(self, action: CopyImage, source: Path, target: Path) -> None:
        """Copy `source` to `target` (this process's paths of `action`'s image and disk) in a
        new thread; nothing when a copy to that disk runs already."""
        with self._lock:
            if action.path in self._running:
                return
            self._failed.pop(action.path, None)
            cancel = threading.Event()
            worker = threading.Thread(
                target=self._copy,
                args=(action, source, target, cancel),
                name=f"copy {action.path}",
                daemon=True,
            )
            self._running[action.path] = (DiskCopy(action.source), worker, cancel)
        worker.start()

    def copies(self) -> dict[str, DiskCopy]:
        """Disk path -> its copy in flight, or its last failure while a retry waits."""
        now = self._clock()
        with self._lock:
            found = {path: copy for path, (copy, _t, _c) in self._running.items()}
            for path, (copy, at) in list(self._failed.items()):
                if now - at >= self.retry_after:
                    del self._failed[path]
                elif path not in found:
                    found[path] = copy
        return found

    def cancel(self, path: str, timeout: float = 10.0) -> None:
        """Cancel the copy to disk `path`, if one runs (its disk is forgotten: the guest is
        gone), and wait for it to remove its temporary."""
        with self._lock:
            entry = self._running.get(path)
            self._failed.pop(path, None)
        if entry is not None:
            entry[2].set()
            entry[1].join(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """Cancel every copy and wait (up to `timeout` in all) for the threads to end."""
        with self._lock:
            running = list(self._running.values())
        for _copy, _thread, cancel in running:
            cancel.set()
        deadline = time.monotonic() + timeout
        for _copy, thread, _cancel in running:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _copy(self, action: CopyImage, source: Path, target: Path, cancel: threading.Event) -> None:
        fields: dict[str, object] = {
            "guest": action.guest,
            "disk": action.path,
            "image": action.source,
        }
        log.info("disk.copy_started", **fields, size=action.size)
        failure: str | None = None
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            for swept in sweep_temporaries(target):
                log.info("disk.copy_swept", **fields, temporary=str(swept))
            result = copy_sparse(
                source,
                target,
                size=action.size,
                progress=lambda p: self.progress(action, p, fields),
                cancel=cancel,
                progress_interval=self._progress_interval,
            )
        except TargetExists:
            log.warning("disk.copy_skipped", **fields, reason="the disk exists: it is kept")
        except CopyCancelled:
            log.info("disk.copy_cancelled", **fields)
        except (CopyError, OSError) as exc:
            failure = str(exc.message if isinstance(exc, CopyError) else exc)
            log.error("disk.copy_failed", **fields, error=failure)
        else:
            rate = result.data_bytes / result.seconds if result.seconds > 0 else 0.0
            log.info(
                "disk.copied",
                **fields,
                data_bytes=result.data_bytes,
                written_bytes=result.written_bytes,
                seconds=round(result.seconds, 3),
                rate_mib_s=round(rate / MIB, 1),
            )
        finally:
            with self._lock:
                self._running.pop(action.path, None)
                if failure is not None:
                    copy = DiskCopy(action.source, error=failure)
                    self._failed[action.path] = (copy, self._clock())
            if not cancel.is_set():
                self._on_done(action.path)

    def progress(self, action: CopyImage, progress: Progress, fields: dict[str, object]) -> None:
        """One progress report of a copy, on its thread: kept for `copies()` and logged."""
        with self._lock:
            entry = self._running.get(action.path)
            if entry is not None:
                copy = replace(
                    entry[0], done=progress.done, total=progress.total, rate=progress.rate
                )
                self._running[action.path] = (copy, entry[1], entry[2])
        percent = 100 * progress.done // progress.total if progress.total else 100
        log.info(
            "disk.copy_progress",
            **fields,
            done_bytes=progress.done,
            total_bytes=progress.total,
            percent=percent,
            rate_mib_s=round(progress.rate / MIB, 1),
        )
