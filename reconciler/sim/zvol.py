"""Simulated zfs(8) commands that change datasets: create, snapshot, clone and set volsize.

Owns the order of checks and the messages of cmd/zfs/zfs_main.c (zfs_do_create, zfs_do_snapshot,
zfs_do_clone, zfs_do_set) and lib/libzfs/libzfs_dataset.c (zfs_create, check_parents,
zfs_clone, zfs_snapshot_nvl, zfs_valid_proplist), and the /dev/zvol files that stand for
volumes: sparse files of volsize bytes, whose content a snapshot keeps and a clone starts from.
It never destroys a dataset: the reconciler never asks it to.
"""

from __future__ import annotations

import os

from reconciler.sim import state as st
from reconciler.sim.args import UsageError, getopt
from reconciler.sim.zfs import nicebytes, nicestrtonum, usage

# lseek(2) whence values; typeshed lists them only for some platforms (3 and 4 on Linux and
# FreeBSD alike).
_SEEK_DATA: int = getattr(os, "SEEK_DATA", 3)
_SEEK_HOLE: int = getattr(os, "SEEK_HOLE", 4)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from reconciler.sim.tools import Output

# OpenZFS 2.2's default volblocksize (FreeBSD 14.x); zfs_prop.c ZVOL_DEFAULT_BLOCKSIZE.
VOLBLOCKSIZE = 16384
_VOLMODES = ("default", "full", "geom", "dev", "none")


def device(root: str, name: str) -> str:
    return os.path.join(root, "dev", "zvol", name)


def _snapshot_store(root: str, name: str) -> str:
    return os.path.join(st.sim_dir(root), "snapshots", name.replace("/", "%").replace("@", "%%"))


def _sparse_copy(source: str, target: str, size: int) -> None:
    """Copy only the data regions (SEEK_DATA/SEEK_HOLE): volumes are large and mostly holes."""
    with open(source, "rb") as src, open(target, "wb") as dst:
        dst.truncate(size)
        fd = src.fileno()
        offset = 0
        while offset < size:
            try:
                start = os.lseek(fd, offset, _SEEK_DATA)
            except OSError:  # ENXIO: no data after offset
                break
            end = os.lseek(fd, start, _SEEK_HOLE)
            src.seek(start)
            dst.seek(start)
            remaining = end - start
            while remaining > 0:
                chunk = src.read(min(remaining, 1 << 20))
                if not chunk:
                    break
                dst.write(chunk)
                remaining -= len(chunk)
            offset = end


def _publish(store: st.Store, name: str, source: str | None, size: int) -> None:
    """Make /dev/zvol/NAME: at once, after the configured delay, or when a test releases it.

    GEOM and devfs create a new zvol's node asynchronously, so it may appear a moment after
    `zfs create` returns (reference §8; a driver has to wait for it).
    """
    path = device(store.root, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    staged = _staged(store.root, name)
    os.makedirs(os.path.dirname(staged), exist_ok=True)
    if source is None:
        with open(staged, "wb") as f:
            f.truncate(size)
    else:
        _sparse_copy(source, staged, size)
    delay = store.state["zvol_delay"]
    if delay is None:
        os.replace(staged, path)
    elif delay == float("inf"):
        store.state["pending_zvols"].append(name)
        store.dirty = True
    else:
        _publish_later(staged, path, delay)


def _publish_later(staged: str, path: str, delay: float) -> None:
    # A detached child, with no inherited pipes, so the caller's read of zfs's output ends.
    if os.fork() != 0:
        return
    try:
        os.setsid()
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        # Nor the state lock `zfs create` holds (a flock goes with every copy of its
        # descriptor): held while this child sleeps, it would stall every other tool too.
        os.closerange(3, os.sysconf("SC_OPEN_MAX"))
        import time

        time.sleep(delay)
        os.replace(staged, path)
    finally:
        os._exit(0)


def _staged(root: str, name: str) -> str:
    return os.path.join(st.sim_dir(root), "zvol-staged", name.replace("/", "%"))


def _content(root: str, name: str) -> str:
    """Where a volume's data is: its node, or the staged file while the node is held back."""
    path = device(root, name)
    return path if os.path.exists(path) else _staged(root, name)


def release_pending(root: str, state: st.State) -> list[str]:
    """Publish every node held back; returns their dataset names."""
    released = state["pending_zvols"]
    state["pending_zvols"] = []
    for name in released:
        os.replace(_staged(root, name), device(root, name))
    return released


def _check_parents(datasets: dict[str, st.Dataset], name: str) -> str | None:
    """libzfs_dataset.c check_parents(): the reason a dataset cannot be created under it."""
    parent = name.rpartition("/")[0]
    if not parent:
        return "missing dataset name"
    pool = name.split("/", 1)[0]
    if pool not in datasets:
        return f"no such pool '{pool}'"
    if parent not in datasets:
        return "parent does not exist"
    if datasets[parent]["type"] != "filesystem":
        return "parent is not a filesystem"
    return None


def _create_ancestors(datasets: dict[str, st.Dataset], name: str) -> str | None:
    """zfs_create_ancestors(): every missing ancestor becomes a filesystem."""
    missing = []
    parent = name.rpartition("/")[0]
    while parent and parent not in datasets:
        missing.append(parent)
        parent = parent.rpartition("/")[0]
    if not parent:
        return f"no such pool '{name.split('/', 1)[0]}'"
    if datasets[parent]["type"] != "filesystem":
        return "parent is not a filesystem"
    for ancestor in reversed(missing):
        datasets[ancestor] = _filesystem()
    return None


def _filesystem() -> st.Dataset:
    return {"type": "filesystem", "volsize": 0, "volmode": "default", "volblocksize": 0,
            "origin": None}  # fmt: skip


def _create_options(options: list[tuple[str, str]], out: Output) -> dict[str, str] | int:
    """zfs_do_create()'s getopt loop: -V and -b through zfs_nicestrtonum(), -o parseprop()."""
    props: dict[str, str] = {}
    for letter, value in options:
        if letter in ("V", "b"):
            parsed, reason = nicestrtonum(value)
            if parsed is None:
                what = "volume size" if letter == "V" else "volume block size"
                out.error(f"bad {what} '{value}': {reason}")
                return 1
            props["volsize" if letter == "V" else "volblocksize"] = str(parsed)
        elif letter == "o":
            key, eq, text = value.partition("=")
            if not eq:
                out.error("missing '=' for property=value argument")
                return 1
            props[key] = text
    return props


def create(store: st.Store, args: list[str], out: Output) -> int:
    datasets = store.state["datasets"]
    try:
        options, names = getopt(args, "PV:b:nso:puv")
    except UsageError as exc:
        reason = "missing size argument" if "requires" in str(exc) else ""
        return usage(out, "create", reason or f"invalid option '{str(exc)[-1]}'")
    props = _create_options(options, out)
    if isinstance(props, int):
        return props
    volume = "volsize" in props
    if not names or len(names) > 1:
        kind = "volume" if volume else "filesystem"
        return usage(
            out, "create", f"missing {kind} argument" if not names else "too many arguments"
        )
    name = names[0]
    pool = name.split("/", 1)[0]
    if volume and pool not in datasets:
        # zfs_do_create(): zpool_open() comes first for a volume.
        out.error(f"cannot open '{pool}': no such pool")
        return 1
    if ("p", "") in options:
        existing = datasets.get(name)
        # "If the target already exists and '-p' option was used we should not complain."
        # zfs_dataset_exists() only matches the asked type.
        if existing is not None and existing["type"] == ("volume" if volume else "filesystem"):
            return 0
        failed = _create_ancestors(datasets, name)
        if failed is not None:
            out.error(f"cannot create '{name}': {failed}")
            return 1
        store.dirty = True
    return _zfs_create(store, name, props, out)


def _zfs_create(store: st.Store, name: str, props: dict[str, str], out: Output) -> int:
    """libzfs zfs_create(): parents, existence, then the volume's size and block size."""
    datasets = store.state["datasets"]
    reason = _check_parents(datasets, name)
    if reason is None and name in datasets:
        reason = "dataset already exists"
    volmode = props.get("volmode", "default")
    if reason is None and volmode not in _VOLMODES:
        reason = f"'volmode' must be one of '{' | '.join(_VOLMODES)}'"
    volsize = int(props.get("volsize", "0"))
    blocksize = int(props.get("volblocksize", str(VOLBLOCKSIZE)))
    if reason is None and "volsize" in props and volsize == 0:
        reason = "volume size cannot be zero"
    if reason is not None:
        out.error(f"cannot create '{name}': {reason}")
        return 1
    if "volsize" not in props:
        datasets[name] = _filesystem()
    else:
        # zfs_do_create(): "If volsize is not a multiple of volblocksize, round it up to the
        # nearest multiple of the volblocksize." (OpenZFS 2.1 and later)
        volsize = -(-volsize // blocksize) * blocksize
        datasets[name] = {"type": "volume", "volsize": volsize, "volmode": volmode,
                          "volblocksize": blocksize, "origin": None}  # fmt: skip
        _publish(store, name, None, volsize)
    store.dirty = True
    return 0


def snapshot(store: st.Store, args: list[str], out: Output) -> int:
    datasets = store.state["datasets"]
    try:
        _, names = getopt(args, "ro:")
    except UsageError as exc:
        return usage(out, "snapshot", f"invalid option '{str(exc)[-1]}'")
    if not names:
        return usage(out, "snapshot", "missing snapshot argument")
    for name in names:
        base, at, _ = name.partition("@")
        if not at:
            return usage(out, "snapshot")
        if base not in datasets or datasets[base]["type"] == "snapshot":
            # zfs_do_snapshot(): zfs_open() fails, then `goto usage`.
            out.error(f"cannot open '{base}': dataset does not exist")
            return usage(out, "snapshot")
    for name in names:
        if name in datasets:
            # zfs_snapshot_nvl(): lzc_snapshot()'s EEXIST through zfs_standard_error().
            out.error(f"cannot create snapshot '{name}': dataset already exists")
            if len(names) > 1:
                out.error("no snapshots were created")
            return 1
    for name in names:
        base = name.partition("@")[0]
        source = datasets[base]
        datasets[name] = {**source, "type": "snapshot", "origin": None}
        if source["type"] == "volume":
            os.makedirs(os.path.dirname(_snapshot_store(store.root, name)), exist_ok=True)
            _sparse_copy(_content(store.root, base), _snapshot_store(store.root, name),
                         source["volsize"])  # fmt: skip
    store.dirty = True
    return 0


def clone(store: st.Store, args: list[str], out: Output) -> int:
    datasets = store.state["datasets"]
    try:
        options, names = getopt(args, "o:pu")
    except UsageError as exc:
        return usage(out, "clone", f"invalid option '{str(exc)[-1]}'")
    if len(names) != 2:
        missing = ("missing source dataset argument", "missing target dataset argument")
        return usage(out, "clone", missing[len(names)] if len(names) < 2 else "too many arguments")
    source, target = names
    if source not in datasets or datasets[source]["type"] != "snapshot":
        # zfs_do_clone(): zfs_open(argv[0], ZFS_TYPE_SNAPSHOT) fails; ret stays 1.
        out.error(f"cannot open '{source}': dataset does not exist")
        return 1
    if ("p", "") in options:
        if target in datasets and datasets[target]["type"] != "snapshot":
            return 0  # "If the target already exists and '-p' ... we should not complain."
        reason = _create_ancestors(datasets, target)
        if reason is not None:
            out.error(f"cannot create '{target}': {reason}")
            return 1
    reason = _check_parents(datasets, target)
    if reason is None and target in datasets:
        reason = "dataset already exists"  # lzc_clone()'s EEXIST
    if reason is not None:
        out.error(f"cannot create '{target}': {reason}")
        return 1
    snap = datasets[source]
    store.dirty = True
    if not snap["volblocksize"]:
        datasets[target] = {**_filesystem(), "origin": source}
        return 0
    datasets[target] = {**snap, "type": "volume", "origin": source}
    _publish(store, target, _snapshot_store(store.root, source), snap["volsize"])
    return 0


def _set_volsize(store: st.Store, name: str, text: str, out: Output) -> int:
    """zfs_valid_proplist() for an existing volume, then the resize of its device."""
    dataset = store.state["datasets"][name]
    action = f"cannot set property for '{name}'"
    value, reason = nicestrtonum(text)
    if value is None:
        out.error(f"{action}: {reason}")
        return 1
    if dataset["type"] != "volume":
        out.error(f"{action}: 'volsize' does not apply to datasets of this type")
        return 1
    blocksize = dataset["volblocksize"]
    if value % blocksize:
        out.error(f"{action}: 'volsize' must be a multiple of volume block size "
                  f"({nicebytes(blocksize)})")  # fmt: skip
        return 1
    if value == 0:
        out.error(f"{action}: 'volsize' cannot be zero")
        return 1
    dataset["volsize"] = value
    store.dirty = True
    with open(_content(store.root, name), "r+b") as f:
        f.truncate(value)
    return 0


def set_(store: st.Store, args: list[str], out: Output) -> int:
    datasets = store.state["datasets"]
    try:
        _, rest = getopt(args, "u")
    except UsageError as exc:
        return usage(out, "set", f"invalid option '{str(exc)[-1]}'")
    assignments = [a for a in rest if "=" in a]
    targets = [a for a in rest if "=" not in a]
    if not rest:
        return usage(out, "set", "missing arguments")
    if not targets:
        return usage(out, "set", "missing dataset name(s)")
    if not assignments:
        return usage(out, "set", "missing property=value argument(s)")
    status = 0
    for name in targets:
        if name not in datasets:
            out.error(f"cannot open '{name}': dataset does not exist")
            status = 1
            continue
        for assignment in assignments:
            prop, _, value = assignment.partition("=")
            if prop != "volsize":
                # Only volsize is modelled; others are accepted and forgotten.
                continue
            status = _set_volsize(store, name, value, out) or status
    return status


COMMANDS: dict[str, Callable[[st.Store, list[str], Output], int]] = {
    "create": create,
    "snapshot": snapshot,
    "snap": snapshot,
    "clone": clone,
    "set": set_,
}
