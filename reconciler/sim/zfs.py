"""Simulated zfs(8): the command table, `list` and `get`, and OpenZFS's number formats.

Owns reading the dataset table the way cmd/zfs/zfs_main.c and lib/libzfs print it (-H tabs,
-p exact numbers, nicenum otherwise) and dispatching the commands that change it to zvol.py.
Messages follow libzfs' "<action>: <reason>" form (libzfs_util.c zfs_verror()).
"""

from __future__ import annotations

from reconciler.sim import state as st
from reconciler.sim.args import UsageError, getopt

TYPE_CHECKING = False
if TYPE_CHECKING:
    from reconciler.sim.tools import Output

_SUFFIXES = "BKMGTPEZ"
# zfs_main.c get_usage(): the usage text of each command the sim knows.
USAGE = {
    "clone": "\tclone [-p[p]u] [-o property=value] ... <snapshot> <filesystem|volume>",
    "create": "\tcreate [-Pnp[p]uv] [-o property=value] ... <filesystem>\n"
    "\tcreate [-Pnp[p]sv] [-b blocksize] [-o property=value] ... -V <size> <volume>",
    "get": '\tget [-rHp] [-d max] [-o "all" | field[,...]]\n'
    "\t    [-t type[,...]] [-s source[,...]]\n"
    '\t    <"all" | property[,...]> [filesystem|volume|snapshot|bookmark] ...',
    "list": "\tlist [-Hp] [-r|-d max] [-o property[,...]] [-s property]...\n"
    "\t    [-S property]... [-t type[,...]] [filesystem|volume|snapshot] ...",
    "set": "\tset [-u] <property=value> ... <filesystem|volume|snapshot> ...",
    "snapshot": "\tsnapshot [-r] [-o property=value] ... <filesystem|volume>@<snap> ...",
}
PROPERTIES = (
    "name", "type", "creation", "used", "available", "avail", "referenced", "refer",
    "mountpoint", "origin", "volsize", "volblocksize", "volmode",
)  # fmt: skip


def usage(out: Output, command: str, reason: str = "") -> int:
    """zfs_main.c usage(B_FALSE): the reason, "usage:" and the command's usage; exit 2."""
    if reason:
        out.error(reason)
    out.error("usage:")
    out.error(USAGE[command])
    return 2


def nicestrtonum(text: str) -> tuple[int | None, str]:
    """libzfs_util.c zfs_nicestrtonum() and str2shift(): (value, or None and the reason)."""
    if not text or (not "0" <= text[0] <= "9" and text[0] != "."):
        return None, f"bad numeric value '{text}'"
    end = 0
    while end < len(text) and (text[end].isdigit() or text[end] == "."):
        end += 1
    number, suffix = text[:end], text[end:]
    if suffix:
        index = _SUFFIXES.find(suffix[0].upper())
        rest = suffix[1:].upper()
        # "Allow 'G' = 'GB' = 'GiB', case-insensitively. However, 'BB' and 'BiB' are
        # disallowed."
        if index < 0 or not (rest == "" or (index > 0 and rest in ("B", "IB"))):
            return None, f"invalid numeric suffix '{suffix}'"
        shift = 10 * index
    else:
        shift = 0
    try:
        value = int(float(number) * (1 << shift)) if "." in number else int(number) << shift
    except ValueError:
        return None, f"bad numeric value '{text}'"
    if value >= 1 << 64:
        return None, "numeric value is too large"
    return value, ""


def nicebytes(value: int) -> str:
    """libzfs zfs_nicenum_format(): whole multiples bare, else the most precision in 5 chars."""
    index = 0
    while index < 6 and value >= 1024 ** (index + 1):
        index += 1
    unit = _SUFFIXES[index]
    if index == 0 or value % (1024**index) == 0:
        return f"{value // 1024**index}{unit}"
    for precision in (2, 1, 0):
        text = f"{value / 1024**index:.{precision}f}{unit}"
        if len(text) <= 5:
            return text
    return text


def column(datasets: dict[str, st.Dataset], name: str, prop: str, exact: bool) -> str:
    """One property of one dataset as zfs list/get print it; "-" where it does not apply."""
    dataset = datasets[name]
    kind = dataset["type"]
    if prop == "name":
        return name
    if prop == "type":
        return kind
    if prop in ("volsize", "volblocksize"):
        # Filesystems and their snapshots have no volume properties (volblocksize 0 here).
        if not dataset["volblocksize"]:
            return "-"
        value = dataset[prop]  # type: ignore[literal-required]
        return str(value) if exact else nicebytes(value)
    if prop == "volmode":
        return dataset["volmode"] if kind == "volume" else "-"
    if prop == "origin":
        return dataset["origin"] or "-"
    if prop in ("used", "refer", "referenced"):
        return "0" if exact else "96K"
    if prop == "mountpoint":
        return "/" + name if kind == "filesystem" else "-"
    return "-"


def _select(
    datasets: dict[str, st.Dataset], names: list[str], recurse: bool, types: set[str]
) -> list[str] | str:
    """zfs_for_each() as list uses it: named datasets (and children with -r), else every one
    of the asked types; snapshots only when asked for or named (listsnapshots=off)."""
    if not names:
        return [n for n in sorted(datasets) if datasets[n]["type"] in types]
    selected: list[str] = []
    for name in names:
        if name not in datasets:
            return f"cannot open '{name}': dataset does not exist"
        if datasets[name]["type"] in types or "@" in name:
            selected.append(name)
        if recurse or types == {"snapshot"}:
            selected += [
                d
                for d in sorted(datasets)
                if d.startswith((name + "/", name + "@")) and datasets[d]["type"] in types
            ]
    return selected


def _list(store: st.Store, args: list[str], out: Output) -> int:
    datasets = store.state["datasets"]
    try:
        options, names = getopt(args, "Hpro:s:S:t:d:")
    except UsageError as exc:
        return usage(out, "list", f"invalid option '{str(exc)[-1]}'")
    flags = {letter for letter, _ in options}
    values = dict(options)
    columns = values.get("o", "name,used,avail,refer,mountpoint").split(",")
    types = set(values.get("t", "filesystem,volume").split(","))
    if "all" in types:
        types = {"filesystem", "volume", "snapshot"}
    selected = _select(datasets, names, "r" in flags, types)
    if isinstance(selected, str):
        out.error(selected)
        return 1
    rows = [[column(datasets, n, c, "p" in flags) for c in columns] for n in selected]
    if not rows:
        # zfs_do_list(): only when not scripted (-H).
        if "H" not in flags:
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


def _get(store: st.Store, args: list[str], out: Output) -> int:
    datasets = store.state["datasets"]
    try:
        options, rest = getopt(args, "rHpo:s:t:d:")
    except UsageError as exc:
        return usage(out, "get", f"invalid option '{str(exc)[-1]}'")
    flags = {letter for letter, _ in options}
    fields = dict(options).get("o", "name,property,value,source").split(",")
    if not rest:
        return usage(out, "get", "missing property argument")
    props = rest[0].split(",")
    for prop in props:
        if prop not in PROPERTIES:
            # zprop_get_list(): "bad property list: invalid property", then usage.
            out.error(f"bad property list: invalid property '{prop}'")
            return usage(out, "get")
    targets = rest[1:] or sorted(datasets)
    status = 0
    rows: list[list[str]] = []
    for name in targets:
        if name not in datasets:
            out.error(f"cannot open '{name}': dataset does not exist")
            status = 1
            continue
        for prop in props:
            value = column(datasets, name, prop, "p" in flags)
            cells = {"name": name, "property": prop, "value": value, "source": "-"}
            rows.append([cells.get(field, "-") for field in fields])
    for row in rows:
        out.print("\t".join(row) if "H" in flags else "  ".join(row))
    return status


def zfs(store: st.Store, args: list[str], out: Output) -> int:
    command, rest = (args[0], args[1:]) if args else ("", [])
    if command == "list":
        return _list(store, rest, out)
    if command == "get":
        return _get(store, rest, out)
    if command in ("create", "snapshot", "snap", "clone", "set"):
        from reconciler.sim import zvol

        return zvol.COMMANDS[command](store, rest, out)
    # zfs_main.c main(): no command, or an unknown one, is usage(B_FALSE), exit 2.
    if command:
        out.error(f"unrecognized command '{command}'")
    out.error("usage: zfs command args ...")
    return 2
