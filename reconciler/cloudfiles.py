"""The files a guest file names besides itself: the user-data and network-config files its
`[cloud_init]` reads (into the spec, so the seed is a function of the accepted spec), and, for
`validate`, its disks' images and sizes.

Edge code for `specdir.ConfDir`: stat and bounded reads only, under the host root; it never
writes. A referenced file is read like a spec file: at most `MAX_CONTENT` bytes, a regular file
only, and trusted only as a spec file would be; what it says is checked with the same rules as
inline text, and every problem names the guest file and the key that names the file.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from reconciler.cloudinit_rules import MAX_CONTENT, network_config_problem, user_data_problem
from reconciler.errors import SpecError
from reconciler.images import HEAD_SIZE, TAIL_SIZE, detect_image, image_problem
from reconciler.spec import GuestSpec
from reconciler.units import format_size

# A referenced file's stat as a scan compares it: mtime, size, inode (None: not there).
FileSignature = tuple[int, int, int] | None
Refs = tuple[tuple[str, FileSignature], ...]
Refusal = Callable[[os.stat_result], str | None]

_KEYS = (
    ("cloud_init.user_data", "user_data", user_data_problem),
    ("cloud_init.network_config", "network_config", network_config_problem),
)


def referenced_paths(spec: GuestSpec) -> tuple[str, ...]:
    ci = spec.cloud_init
    if ci is None:
        return ()
    return tuple(p for p in (ci.user_data_path, ci.network_config_path) if p is not None)


def signatures(paths: tuple[str, ...], root_prefix: str) -> Refs:
    """The stat of each path, to tell on the next scan whether one changed."""
    found: list[tuple[str, FileSignature]] = []
    for path in paths:
        try:
            st = os.stat(root_prefix + path)
        except OSError:
            found.append((path, None))
            continue
        found.append((path, (st.st_mtime_ns, st.st_size, st.st_ino)))
    return tuple(found)


def read_referenced(
    spec: GuestSpec, root_prefix: str, refusal: Refusal
) -> tuple[GuestSpec | None, list[SpecError]]:
    """`spec` with the content of each file its `[cloud_init]` names, or None and the errors
    (a file missing, unreadable, untrusted, too large, not UTF-8, or not what cloud-init
    reads). `refusal` says why a file's owner or mode make it untrusted, or None."""
    ci = spec.cloud_init
    if ci is None or not referenced_paths(spec):
        return spec, []
    errors: list[SpecError] = []
    contents: dict[str, str] = {}
    for key, field, problem_of in _KEYS:
        path = getattr(ci, f"{field}_path")
        if path is None:
            continue
        text, problem = _read_text(root_prefix + path, refusal)
        if text is not None:
            problem = problem_of(text)
        if problem is not None or text is None:
            errors.append(SpecError(spec.source, key, f"{path}: {problem}"))
        else:
            contents[field] = text
    if errors:
        return None, errors
    read = replace(
        ci,
        user_data_content=contents.get("user_data"),
        network_config_content=contents.get("network_config"),
    )
    return replace(spec, cloud_init=read), []


def _read_text(where: str, refusal: Refusal) -> tuple[str | None, str | None]:
    """The file's text, or None and why not."""
    try:
        # O_NONBLOCK: a FIFO put there must not hang the scan.
        fd = os.open(where, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        return None, f"cannot read it: {exc.strerror}"
    with os.fdopen(fd, "rb") as handle:
        st = os.fstat(handle.fileno())
        if not stat.S_ISREG(st.st_mode):
            return None, "is not a regular file"
        refused = refusal(st)
        if refused is not None:
            return None, refused
        raw = handle.read(MAX_CONTENT + 1)
    if len(raw) > MAX_CONTENT:
        return None, f"is larger than {MAX_CONTENT} bytes"
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        return None, f"is not UTF-8 text (byte {exc.start})"


def disk_warnings(spec: GuestSpec, root_prefix: str) -> list[SpecError]:
    """For `validate`: a missing disk whose image is not there (yet) or cannot be copied, and
    a `size` smaller than an existing disk file (disks are never shrunk)."""
    warnings: list[SpecError] = []
    for index, disk in enumerate(spec.disks):
        if disk.path is None:
            continue
        try:
            st = os.stat(root_prefix + disk.path)
        except OSError:
            st = None
        if st is not None:
            if disk.size is not None and stat.S_ISREG(st.st_mode) and disk.size < st.st_size:
                warnings.append(
                    SpecError(
                        spec.source,
                        f"disk[{index}].size",
                        f"{format_size(disk.size)} is smaller than {disk.path} "
                        f"({format_size(st.st_size)}); disks are never shrunk, so it stays "
                        "as it is",
                        warning=True,
                    )
                )
        elif disk.source is not None:
            problem = _image_problem(disk.source, Path(root_prefix + disk.source), disk.size)
            if problem is not None:
                key = f"disk[{index}].source"
                warnings.append(SpecError(spec.source, key, problem, warning=True))
    return warnings


def _image_problem(source: str, where: Path, disk_size: int | None) -> str | None:
    try:
        with open(where, "rb") as stream:
            size = os.fstat(stream.fileno()).st_size
            head = stream.read(HEAD_SIZE)
            stream.seek(max(0, size - TAIL_SIZE))
            tail = stream.read(TAIL_SIZE)
    except FileNotFoundError:
        return f"{source} does not exist (yet): the disk is copied from it once it does"
    except OSError as exc:
        return f"cannot read {source}: {exc.strerror}"
    problem = image_problem(detect_image(head, tail), source=source, size=size)
    if problem is None and disk_size is not None and disk_size < size:
        problem = (
            f"the disk's size {format_size(disk_size)} is smaller than the image {source} "
            f"({format_size(size)}): a disk can hold its whole image only"
        )
    return problem
