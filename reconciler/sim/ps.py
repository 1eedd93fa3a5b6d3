"""Simulated ps(1): the processes of this simulated host, in FreeBSD's `-o` column format.

The simulated host's processes are real Linux processes (shims, loaders, simulated bhyves)
started with this host's BHYVE_SIM_ROOT in their environment; another test's simulated host on
the same machine is another FreeBSD host, so its processes are not listed. The sim reads /proc
for that: it is the simulator's own business on Linux, never the driver's.
"""

from __future__ import annotations

import os

from reconciler.sim import state as st
from reconciler.sim.args import UsageError, getopt

TYPE_CHECKING = False
if TYPE_CHECKING:
    from reconciler.sim.tools import Output

# bin/ps/ps.1: `-o` takes keywords; `keyword=` gives the column an empty header, and when every
# header is empty no header line is printed. `args` (alias `command`) is the argument list.
_KEYWORDS = ("pid", "ppid", "args", "command", "comm")
_USAGE = (
    "usage: ps [--libxo] [-aCcdefHhjlmrSTuvwXxZ] [-O fmt | -o fmt] [-G gid[,gid...]]\n"
    "          [-J jid[,jid...]] [-M core] [-N system]\n"
    "          [-p pid[,pid...]] [-t tty[,tty...]] [-U user[,user...]]"
)


def _own(root: str, pid: str) -> tuple[int, str] | None:
    """(ppid, args) of /proc/PID when it belongs to this simulated host."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            environ = f.read().split(b"\0")
        if f"{st.ROOT_ENV}={root}".encode() not in environ:
            return None
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()
    if fields[:1] == ["Z"]:
        return int(fields[1]), "<defunct>"
    args = b" ".join(cmdline.rstrip(b"\0").split(b"\0"))
    return int(fields[1]), args.decode("utf-8", "surrogateescape")


def ps(store: st.Store, args: list[str], out: Output) -> int:
    try:
        options, rest = getopt(args, "axwo:")
    except UsageError as exc:
        out.error(f"ps: {exc}")
        out.error(_USAGE)
        return 1
    if rest:
        out.error(_USAGE)
        return 1
    columns: list[tuple[str, str]] = []
    for letter, value in options:
        if letter != "o":
            continue
        for item in value.split(","):
            keyword, _, header = item.partition("=")
            if keyword not in _KEYWORDS:
                out.error(f"ps: {keyword}: keyword not found")
                out.error("ps: no valid keywords; valid keywords:")
                return 1
            columns.append((keyword, header if "=" in item else keyword.upper()))
    columns = columns or [("pid", "PID"), ("args", "COMMAND")]
    rows: list[list[str]] = []
    for entry in sorted((e for e in os.listdir("/proc") if e.isdigit()), key=int):
        found = _own(store.root, entry)
        if found is None:
            continue
        ppid, command = found
        values = {"pid": entry, "ppid": str(ppid), "args": command, "command": command}
        values["comm"] = os.path.basename(command.split(" ")[0])
        rows.append([values[k] for k, _ in columns])
    if any(header for _, header in columns):
        rows.insert(0, [header for _, header in columns])
    for row in rows:
        pairs = zip(columns, row, strict=True)
        cells = [c.rjust(5) if k in ("pid", "ppid") else c for (k, _), c in pairs]
        out.print(" ".join(cells))
    return 0
