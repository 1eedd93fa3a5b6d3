"""Simulated zfs(8): `list` and `create` of filesystems and volumes in pools the sim knows.

Owns the dataset table and the /dev/zvol files that stand for volumes (sparse files of
volsize bytes). It never destroys a dataset: the reconciler never asks it to.
"""

from __future__ import annotations

import os

from reconciler.sim import state as st

TYPE_CHECKING = False
if TYPE_CHECKING:
    from reconciler.sim.tools import Output

_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50}
_VOLBLOCKSIZE = 16384  # OpenZFS 2.2's default, FreeBSD 14.1


def parse_size(text: str) -> int | None:
    upper = text.upper().removesuffix("B") if len(text) > 1 else text.upper()
    number = upper.rstrip("KMGTP")
    unit = upper[len(number) :]
    if unit not in _UNITS:
        return None
    try:
        value = float(number)
    except ValueError:
        return None
    return int(value * _UNITS[unit]) if value >= 0 else None


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "K", "M", "G", "T", "P"):
        if value < 1024 or unit == "P":
            break
        value /= 1024
    if unit == "B":
        return f"{int(value)}B"
    return f"{value:.3g}{unit}" if value != int(value) else f"{int(value)}{unit}"


def _column(dataset: st.Dataset, name: str, column: str, exact: bool) -> str:
    if column == "name":
        return name
    if column == "type":
        return dataset["type"]
    if column == "volsize":
        if dataset["type"] != "volume":
            return "-"
        return str(dataset["volsize"]) if exact else _human(dataset["volsize"])
    if column == "volmode":
        return dataset["volmode"] if dataset["type"] == "volume" else "-"
    if column in ("used", "refer", "referenced"):
        return "0" if exact else "96K"
    return "-"


def _list(store: st.Store, args: list[str], out: Output) -> int:
    datasets = store.state["datasets"]
    try:
        options, names = st.getopt(args, "Hpro:s:S:t:d:")
    except st.UsageError as exc:
        out.error(f"{exc}\nusage:\n\tlist [-Hp] [-r|-d max] [-o property[,...]] [-t type[,...]]")
        return 2
    flags = {letter for letter, _ in options}
    values = dict(options)
    columns = values.get("o", "name,used,avail,refer,mountpoint").split(",")
    types = set(values.get("t", "filesystem,volume").split(","))
    if "all" in types:
        types = {"filesystem", "volume"}
    selected: list[str] = []
    for name in names:
        if name not in datasets:
            out.error(f"cannot open '{name}': dataset does not exist")
            return 1
        selected.append(name)
        if "r" in flags:
            selected += [d for d in sorted(datasets) if d.startswith(name + "/")]
    if not names:
        selected = sorted(datasets)
    rows = [
        [_column(datasets[n], n, c, "p" in flags) for c in columns]
        for n in selected
        if datasets[n]["type"] in types
    ]
    if not rows:
        out.error("no datasets available")
        return 0
    if "H" in flags:
        for row in rows:
            out.print("\t".join(row))
        return 0
    header = [c.upper() for c in columns]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(columns))]
    for row in [header, *rows]:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        out.print("  ".join(cells).rstrip())
    return 0


def _create(store: st.Store, args: list[str], out: Output) -> int:
    datasets = store.state["datasets"]
    try:
        options, names = st.getopt(args, "psuV:b:o:")
    except st.UsageError as exc:
        out.error(
            f"{exc}\nusage:\n\tcreate [-Pnpuv] [-o property=value] ... <filesystem>\n"
            "\tcreate [-Pnpsv] [-b blocksize] [-o property=value] ... -V <size> <volume>"
        )
        return 2
    flags = {letter for letter, _ in options}
    if len(names) != 1:
        out.error("missing dataset argument" if not names else "too many arguments")
        return 2
    name = names[0]
    properties = dict(v.partition("=")[::2] for letter, v in options if letter == "o")
    volsize_text = next((v for letter, v in options if letter == "V"), None)
    volsize = 0
    if volsize_text is not None:
        parsed = parse_size(volsize_text)
        if parsed is None or parsed == 0:
            out.error(f"bad volume size '{volsize_text}'")
            return 2
        if parsed % _VOLBLOCKSIZE:
            out.error(
                f"cannot create '{name}': volume size must be a multiple of volume block size"
            )
            return 1
        volsize = parsed
    volmode = properties.get("volmode", "default")
    if volmode not in ("default", "geom", "dev", "none"):
        out.error(
            f"cannot create '{name}': 'volmode' must be one of 'default | full | geom | dev | none'"
        )
        return 1
    pool = name.split("/", 1)[0]
    if pool not in datasets:
        out.error(f"cannot create '{name}': no such pool '{pool}'")
        return 1
    if name in datasets:
        out.error(f"cannot create '{name}': dataset already exists")
        return 1
    parent = name.rpartition("/")[0]
    if not parent:
        out.error(f"cannot create '{name}': missing dataset name")
        return 2
    missing: list[str] = []
    while parent not in datasets:
        missing.append(parent)
        parent = parent.rpartition("/")[0]
    if datasets[parent]["type"] != "filesystem":
        out.error(f"cannot create '{name}': parent is not a filesystem")
        return 1
    if missing and "p" not in flags:
        out.error(f"cannot create '{name}': parent does not exist")
        return 1
    for ancestor in reversed(missing):
        datasets[ancestor] = {"type": "filesystem", "volsize": 0, "volmode": "default"}
    if volsize_text is None:
        datasets[name] = {"type": "filesystem", "volsize": 0, "volmode": "default"}
    else:
        datasets[name] = {"type": "volume", "volsize": volsize, "volmode": volmode}
        device = os.path.join(store.root, "dev", "zvol", name)
        os.makedirs(os.path.dirname(device), exist_ok=True)
        with open(device, "wb") as f:
            f.truncate(volsize)
    store.dirty = True
    return 0


def zfs(store: st.Store, args: list[str], out: Output) -> int:
    if args[:1] == ["list"]:
        return _list(store, args[1:], out)
    if args[:1] == ["create"]:
        return _create(store, args[1:], out)
    if not args:
        out.error("usage: zfs command args ...")
        return 2
    out.error(f"unrecognized command '{args[0]}'")
    return 2
