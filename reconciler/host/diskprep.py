"""The driver's part for disks made from images, grown disks and cloud-init seeds: what it
observes of them, and how it makes each action true.

Edge: file operations (stat, a read of an image's first and last bytes, a sparse copy,
ftruncate, writing the seed's files) and the host's tools through the `Runner` (`zfs list` of
snapshots, `makefs`). Nothing here removes or shrinks a disk: a copy never lands on an existing
file, a growth re-checks the size it grows from, and the only files ever removed are this
daemon's own: a crashed copy's temporary (`.NAME.*.partial` beside the disk) and the previous
seed's files in the guest's state directory.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path

from reconciler.errors import HostCommandError
from reconciler.facts import ImageFile, Observation, parse_zfs_snapshots
from reconciler.host.files import write_atomic
from reconciler.host.runner import Runner, command_error
from reconciler.host.sparse import CopyError, TargetExists, copy_sparse, stale_temporaries
from reconciler.imageactions import BuildSeed, CopyImage, GrowDisk
from reconciler.images import HEAD_SIZE, TAIL_SIZE, detect_image, image_problem
from reconciler.spec import GuestSpec

# zfs_main.c zfs_do_list -> zfs_open: "cannot open '%s': dataset does not exist"
_NO_DATASET = "dataset does not exist"
_STAMP_MAX = 256  # an instance-id is 20 characters; anything longer is not ours


def observe_snapshots(runner: Runner, names: Iterable[str]) -> dict[str, int]:
    """The volsize of each named snapshot that exists, from one `zfs list`. zfs lists the ones
    it finds and names each missing one on stderr (exit 1); any other failure raises."""
    wanted = sorted(set(names))
    argv = ("zfs", "list", "-H", "-p", "-t", "snapshot", "-o", "name,volsize", *wanted)
    result = runner.run(argv)
    errors = [line for line in result.error_text.splitlines() if line.strip()]
    if not result.ok and (not errors or any(_NO_DATASET not in line for line in errors)):
        raise command_error(result)
    return parse_zfs_snapshots(result.stdout)


def observe_clone_sources(
    runner: Runner,
    guests: Iterable[GuestSpec],
    zvols: Mapping[str, int] | None,
    unobserved: dict[Observation, str],
) -> dict[str, int] | None:
    """The snapshots that missing zvols are to be cloned from; None when none is (or zvols
    were not observed). A failed listing is noted in `unobserved`."""
    if zvols is None:
        return None
    wanted = [
        d.source for g in guests for d in g.disks if d.zvol and d.source and d.zvol not in zvols
    ]
    if not wanted:
        return None
    try:
        return observe_snapshots(runner, wanted)
    except (HostCommandError, ValueError) as exc:
        unobserved["snapshots"] = str(exc)
        return None


class ImageProbe:
    """What each image is, read again only when its size or mtime changed: a disk that waits
    for its image is looked at every pass."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[tuple[int, int, int], ImageFile]] = {}

    def look(self, source: str, where: Path) -> ImageFile:
        """`source` (as the spec names it) found at `where` (as this process sees it)."""
        try:
            info = os.stat(where)
        except FileNotFoundError:
            return ImageFile(exists=False, problem=f"the image {source} does not exist (yet)")
        except OSError as exc:
            return ImageFile(
                exists=False, problem=f"cannot read the image {source}: {exc.strerror}"
            )
        if not stat.S_ISREG(info.st_mode):
            return ImageFile(
                exists=True, problem=f"the image {source} is not a regular file (a raw image)"
            )
        signature = (info.st_size, info.st_mtime_ns, info.st_ino)
        cached = self._cache.get(source)
        if cached is not None and cached[0] == signature:
            return cached[1]
        try:
            with open(where, "rb") as stream:
                head = stream.read(HEAD_SIZE)
                stream.seek(max(0, info.st_size - TAIL_SIZE))
                tail = stream.read(TAIL_SIZE)
        except OSError as exc:
            return ImageFile(exists=True, problem=f"cannot read the image {source}: {exc.strerror}")
        problem = image_problem(detect_image(head, tail), source=source, size=info.st_size)
        found = ImageFile(exists=True, size=info.st_size, problem=problem)
        self._cache[source] = (signature, found)
        return found


def read_seed_ids(seeds: Mapping[str, tuple[str, str]]) -> dict[str, str]:
    """guest -> the instance-id of its seed image, for each guest whose image and stamp are
    there (`seeds`: guest -> (image, stamp), daemon paths)."""
    found: dict[str, str] = {}
    for name, (image, stamp) in seeds.items():
        try:
            if not os.path.isfile(image):
                continue
            with open(stamp, "rb") as f:
                text = f.read(_STAMP_MAX).decode("ascii", "replace").strip()
        except OSError:
            continue
        if text:
            found[name] = text
    return found


def sweep_temporaries(disk: Path) -> list[Path]:
    """Remove what crashed copies to `disk` left (none of this process's runs: the caller
    knows). Returns what was removed."""
    removed = []
    for temporary in stale_temporaries(disk):
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
            removed.append(temporary)
    return removed


def copy_image(action: CopyImage, source: Path, target: Path) -> bool:
    """Copy now (for `apply`; the daemon copies in the background, host/copier.py). False when
    the disk exists already: it is never touched."""
    target.parent.mkdir(parents=True, exist_ok=True)
    sweep_temporaries(target)
    try:
        copy_sparse(source, target, size=action.size)
    except TargetExists:
        return False
    except CopyError as exc:
        raise HostCommandError(("copy", action.source, action.path), 1, exc.message) from exc
    return True


def grow_file(action: GrowDisk, where: Path) -> bool:
    """Extend a disk file to `action.size`; False when it is that large already. It is opened
    without O_CREAT and its size taken from the open file, so a disk that vanished is not
    made anew here and one that grew meanwhile is not cut."""
    fd = os.open(where, os.O_WRONLY | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size >= action.size:
            return False
        os.ftruncate(fd, action.size)  # the new end is a hole, as truncate(1) -s makes it
        os.fsync(fd)
    finally:
        os.close(fd)
    return True


def build_seed(runner: Runner, action: BuildSeed) -> bool:
    """Write the seed's files, run makefs into the staging name, rename it over the seed image,
    then note its instance-id (a crash before the note means one more rebuild, never a seed
    that claims to be what it is not)."""
    directory = Path(action.directory)
    directory.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if directory.exists():
        shutil.rmtree(directory)  # the previous seed's files: this daemon's own
    directory.mkdir(mode=0o700)
    for name, content in action.files:
        fd = os.open(directory / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(content)
    staging = Path(action.staging)
    with contextlib.suppress(FileNotFoundError):
        staging.unlink()
    result = runner.run(action.argv)
    if not result.ok:
        with contextlib.suppress(FileNotFoundError):
            staging.unlink()
        raise command_error(result)
    os.chmod(staging, 0o600)  # it holds the user-data
    os.replace(staging, action.path)
    write_atomic(Path(action.stamp), action.instance_id + "\n")
    return True
