"""Which processes belong to which guest, from one process listing.

Pure: parses `ps -axww -o pid=,ppid=,args=` output (bytes: a process title may hold any byte)
into a `ProcessTable`, and says whether a pid is a guest's shim, loader or bhyve. A pid read
from a boot record is trusted only when this says so: a stale record whose pid was reused by an
unrelated process must never be adopted or signalled (DESIGN.md rule 5).

FreeBSD's bhyve sets its title with setproctitle("%s", vmname), which ps shows as
`bhyve: NAME (bhyve)` (usr.sbin/bhyve/bhyverun.c; the Handbook's `ps ax` example); before it
does, its args are `bhyve ... NAME`. Loaders keep their argv: `bhyveload ... NAME`,
`grub-bhyve ... NAME`. The shim runs as `/bin/sh .../shim.sh RUN_DIR/guests/NAME ...`.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import dataclass

PS_ARGV = ("ps", "-axww", "-o", "pid=,ppid=,args=")
LOADERS = ("bhyveload", "grub-bhyve")
SHIM_SCRIPT = "shim.sh"


@dataclass(frozen=True)
class Process:
    pid: int
    ppid: int
    args: str


@dataclass(frozen=True)
class ProcessTable:
    by_pid: Mapping[int, Process]

    def bhyve_of(self, pid: int, name: str) -> bool:
        proc = self.by_pid.get(pid)
        return proc is not None and runs_bhyve(proc.args) == name

    def loader_of(self, pid: int, name: str) -> bool:
        proc = self.by_pid.get(pid)
        return proc is not None and runs_loader(proc.args) == name

    def shim_of(self, pid: int, record_dir: str) -> bool:
        proc = self.by_pid.get(pid)
        if proc is None:
            return False
        words = proc.args.split(" ")
        return any(
            posixpath.basename(word) == SHIM_SCRIPT and words[i + 1 : i + 2] == [record_dir]
            for i, word in enumerate(words)
        )

    def bhyves(self) -> dict[str, int]:
        """Guest name -> pid of every bhyve on the host, whoever started it."""
        found: dict[str, int] = {}
        for proc in self.by_pid.values():
            name = runs_bhyve(proc.args)
            if name is not None:
                found.setdefault(name, proc.pid)
        return found


def runs_bhyve(args: str) -> str | None:
    """The guest a process with these args runs as bhyve, or None."""
    words = args.split()
    if len(words) >= 2 and words[0] == "bhyve:":
        return words[1]
    if len(words) >= 2 and posixpath.basename(words[0]) == "bhyve":
        return words[-1]
    return None


def runs_loader(args: str) -> str | None:
    """The guest a loader process with these args loads, or None. The loader may run under an
    interpreter (a wrapper script), so any word naming a loader counts."""
    words = args.split()
    if len(words) >= 2 and any(posixpath.basename(w) in LOADERS for w in words[:-1]):
        return words[-1]
    return None


def parse_ps(output: bytes) -> ProcessTable:
    """Rows of `pid ppid args`; rows that do not parse (a header, a blank line) are skipped."""
    table: dict[int, Process] = {}
    for raw in output.splitlines():
        parts = raw.split(None, 2)
        if len(parts) < 2 or not parts[0].isdigit() or not parts[1].isdigit():
            continue
        args = parts[2].decode("utf-8", "replace") if len(parts) == 3 else ""
        pid = int(parts[0])
        table[pid] = Process(pid=pid, ppid=int(parts[1]), args=args)
    return ProcessTable(by_pid=table)
