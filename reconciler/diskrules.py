"""The validation rules of a guest's `[[disk]]` keys that are code: options, zvol names, the
list of disks, and where a missing disk is made from (`source`).

Like `guestrules`, each is a rule `guestkeys` attaches to one key; pure, and the messages are
part of the interface (tests quote them).
"""

from __future__ import annotations

import re
from typing import Any

from reconciler.spec import Disk
from reconciler.tomlreader import Entry, Section
from reconciler.units import parse_size
from reconciler.valuerules import describe, did_you_mean, path_problem, show, zvol_problem

DISK_FLAGS = ("nocache", "direct", "ro", "nodelete")

# zfs(8) component names: letters, digits and `_ . : -`; ZFS_MAX_DATASET_NAME_LEN is 256 with
# its NUL.
_SNAPSHOT_RE = re.compile(r"[A-Za-z0-9_.:-]+")
_SNAPSHOT_MAX = 255
# Six digits hold every sector size and keep int() far from its limit on digits.
_SECTORSIZE_RE = re.compile(r"sectorsize=([0-9]{1,6})(?:/([0-9]{1,6}))?")


def disk_options(section: Section, key: str, items: list[Any]) -> tuple[str, ...]:
    seen: dict[str, int] = {}
    out = []
    for index, item in enumerate(items):
        path = f"{section.path(key)}[{index}]"
        if not isinstance(item, str):
            section.reader.error(path, f"expected a string, got {describe(item)}")
            continue
        problem = None if item in DISK_FLAGS else _sector_size_problem(item)
        name = item.split("=", 1)[0]
        if problem is None and name in seen:
            problem = f"`{name}` is already given in {key}[{seen[name]}]"
        if problem is not None:
            section.reader.error(path, problem)
            continue
        seen[name] = index
        out.append(item)
    return tuple(out)


def _sector_size_problem(item: str) -> str | None:
    match = _SECTORSIZE_RE.fullmatch(item)
    if match is None:
        message = (
            "expected one of "
            + ", ".join(show(f) for f in DISK_FLAGS)
            + ' or "sectorsize=N" / "sectorsize=N/M"'
        )
        near = did_you_mean(item, DISK_FLAGS)
        return message if near is None else f"{message}; did you mean {show(near)}?"
    logical = int(match.group(1))
    physical = int(match.group(2) or logical)
    if not all(512 <= n <= 65536 and n & (n - 1) == 0 for n in (logical, physical)):
        return "sector sizes are powers of two from 512 to 65536"
    if logical > physical:
        return "the logical sector size cannot exceed the physical one"
    return None


def size_bytes(section: Section, key: str, text: str) -> int:
    return parse_size(text)


def zvol(section: Section, key: str, value: str) -> str | None:
    problem = zvol_problem(value)
    if problem is not None:
        section.error(key, f"{show(value)}: {problem}")
        return None
    return value


def disks(section: Section, key: str, entries: list[Entry]) -> tuple[Disk, ...]:
    """The valid disks; two that open one device are refused (the later one)."""
    out: list[Disk] = []
    devices: dict[str, str] = {}
    for entry in entries:
        disk: Disk = entry.value
        if not entry.ok:
            continue
        which = "path" if disk.path is not None else "zvol"
        if disk.device in devices:
            section.reader.error(f"{entry.path}.{which}", f"same device as {devices[disk.device]}")
            continue
        devices[disk.device] = entry.path
        out.append(disk)
    return tuple(out)


def disk_source(section: Section, values: dict[str, Any]) -> None:
    """A `path` disk is copied from an image file; a `zvol` disk is cloned from a snapshot in
    its own pool (a clone cannot leave its origin's pool: zfs-clone(8), zfsconcepts(7))."""
    source = values.get("source")
    if source is None:
        return
    if "path" in values:
        problem = _image_source_problem(source, values["path"])
    elif "zvol" in values:
        problem = _snapshot_source_problem(source, values["zvol"])
    else:
        return  # the disk's own path or zvol is wrong, and reported
    if problem is not None:
        section.error("source", problem)


def _image_source_problem(source: str, path: str) -> str | None:
    if "@" in source and not source.startswith("/"):
        return (
            f"{show(source)} looks like a ZFS snapshot: a snapshot is cloned into a `zvol` "
            "disk; a `path` disk is copied from a raw image file (an absolute path)"
        )
    problem = path_problem(source)
    if problem is not None:
        return f"{show(source)} {problem}"
    if source == path:
        return "is the disk itself: name the raw image the disk is copied from"
    return None


def _snapshot_source_problem(source: str, zvol: str) -> str | None:
    dataset, at, snapshot = source.partition("@")
    if not at:
        hint = ": an image file is copied into a `path` disk" if source.startswith("/") else ""
        return (
            f'a zvol disk is cloned from a snapshot: expected "pool/dataset@snapshot", '
            f"got {show(source)}{hint}"
        )
    problem = zvol_problem(dataset)
    if problem is not None:
        return f"{show(source)}: {problem}"
    if _SNAPSHOT_RE.fullmatch(snapshot) is None or len(source) > _SNAPSHOT_MAX:
        return (
            f"{show(source)}: the snapshot name after `@` must be 1 or more of "
            f"A-Z a-z 0-9 _ . : -, and the whole name at most {_SNAPSHOT_MAX} characters"
        )
    pool, disk_pool = dataset.split("/")[0], zvol.split("/")[0]
    if pool != disk_pool:
        return (
            f"{show(source)} is in pool {pool} and the disk in pool {disk_pool}: a clone lives "
            "in its snapshot's pool"
        )
    return None
