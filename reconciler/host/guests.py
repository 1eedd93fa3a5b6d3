"""The real `GuestOps`: one guest's boot shim, its records in `run_dir`, signals and bhyvectl.

Owns `run_dir/guests/NAME/` (the shim's pid and exit records, the supervisor's outcome note,
the boots' output in `boot.log` and where the last boot's part of it begins) and the shim
processes this daemon started, which it reaps so no zombies pile up. A pid read from a record
is trusted only once the process listing shows it is this guest's shim, loader or bhyve.
Commands go through the `Runner`; it decides nothing: that is the supervisor's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from importlib.resources import as_file, files
from pathlib import Path

from reconciler.accepted import Accepted, parse, render
from reconciler.host.bootlog import BOOT_LOG, BootCommand, note_boot
from reconciler.host.files import write_atomic
from reconciler.host.runner import Runner, command_error
from reconciler.policy import ExitStatus
from reconciler.processes import PS_ARGV, ProcessTable, parse_ps
from reconciler.spec import GuestSpec
from reconciler.supervise import BootPlan, BootRecord

GUESTS_SUBDIR = "guests"
BOOTED = "booted.toml"
BOOT_LOG_START = "boot.log.start"  # where the last boot's output begins in boot.log
BOOT_OUTPUT_LIMIT = 64 * 1024  # what is read of a boot's output: its failure lines are last
_RECORDS = ("shim.pid", "loader.pid", "bhyve.pid", "exit", "outcome")


def shim_path() -> Path:
    """The packaged boot shim (`host/shim.sh`), run by /bin/sh."""
    with as_file(files("reconciler.host").joinpath("shim.sh")) as path:
        return Path(path)


def guest_run_dir(run_dir: Path, name: str) -> Path:
    return run_dir / GUESTS_SUBDIR / name


def recorded_guests(run_dir: Path) -> list[str]:
    """Guests with a record in `run_dir`: the daemon adopts these even when their file is gone."""
    try:
        return sorted(p.name for p in (run_dir / GUESTS_SUBDIR).iterdir() if p.is_dir())
    except FileNotFoundError:
        return []


def list_processes(runner: Runner) -> ProcessTable:
    """The host's processes, from one `ps`; an empty table when ps fails (nothing is trusted)."""
    result = runner.run(PS_ARGV)
    return parse_ps(result.stdout if result.ok else b"")


def boot_is_live(rec: BootRecord, alive: Callable[[int], bool]) -> bool:
    """The one liveness rule for a boot record: no exit recorded, and one of its (trusted)
    processes still runs. The supervisor adopts by it; `plan` and `apply` plan by it."""
    pids = (rec.shim_pid, rec.loader_pid, rec.bhyve_pid)
    return rec.exit is None and any(p is not None and alive(p) for p in pids)


class ShimGuestOps:
    """`GuestOps` for one guest on a real (or simulated) host.

    `processes` gives the host's process listing (the daemon takes one per adoption round and
    shares it); `on_watch(pid, name)` asks the daemon's exit watcher to report `pid`'s exit."""

    def __init__(
        self,
        name: str,
        *,
        runner: Runner,
        run_dir: Path,
        vmm_dir: Path,
        processes: Callable[[], ProcessTable],
        on_watch: Callable[[int, str], None] = lambda pid, name: None,
        shim: Path | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.dir = guest_run_dir(run_dir, name)
        self._runner = runner
        self._vmm_dir = vmm_dir
        self._processes = processes
        self._on_watch = on_watch
        self._shim = shim if shim is not None else shim_path()
        self._wall_clock = wall_clock
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    def trusted(self, rec: BootRecord) -> BootRecord:
        if all(p is None for p in (rec.shim_pid, rec.loader_pid, rec.bhyve_pid)):
            return rec
        table = self._processes()
        shim = rec.shim_pid
        loader = rec.loader_pid
        bhyve = rec.bhyve_pid
        return replace(
            rec,
            shim_pid=shim if shim is not None and table.shim_of(shim, str(self.dir)) else None,
            loader_pid=loader
            if loader is not None and table.loader_of(loader, self.name)
            else None,
            bhyve_pid=bhyve if bhyve is not None and table.bhyve_of(bhyve, self.name) else None,
        )

    def watch(self, pid: int) -> None:
        self._on_watch(pid, self.name)

    def booted(self) -> GuestSpec | None:
        """The spec the live boot was started with (written before its shim started); None
        when there is none, or it cannot be read back (then the accepted spec stands in)."""
        try:
            text = (self.dir / BOOTED).read_bytes().decode("utf-8")
            return parse(self.name, text).spec
        except (OSError, UnicodeDecodeError, ValueError):
            return None

    def spawn(self, boot: BootPlan, spec: GuestSpec) -> int:
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Before the boot exists: a daemon that adopts it compares this with the accepted spec.
        write_atomic(self.dir / BOOTED, render(Accepted(spec.source, spec)))
        for path, content in boot.files:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            write_atomic(Path(path), content)
        for record in _RECORDS:
            (self.dir / record).unlink(missing_ok=True)
        loader = boot.loader or ()
        # The log is cut (when too large) and headed first: this boot's output starts after.
        note_boot(self.dir, BootCommand(boot.loader, tuple(boot.bhyve), self._wall_clock()))
        try:
            start = (self.dir / BOOT_LOG).stat().st_size
        except FileNotFoundError:
            start = 0
        write_atomic(self.dir / BOOT_LOG_START, f"{start}\n")
        argv = ["/bin/sh", str(self._shim), str(self.dir), str(len(loader)), *loader, *boot.bhyve]
        proc = self._runner.spawn(argv, output=self.dir / BOOT_LOG)
        self._children[proc.pid] = proc
        return proc.pid

    def record(self) -> BootRecord:
        self._reap()
        return BootRecord(
            shim_pid=self._read_pid("shim.pid"),
            loader_pid=self._read_pid("loader.pid"),
            bhyve_pid=self._read_pid("bhyve.pid"),
            exit=self._read_exit(),
            outcome=self._read("outcome"),
            bhyve_age=self._age("bhyve.pid"),
        )

    def alive(self, pid: int) -> bool:
        if pid <= 0:
            return False
        self._reap()
        if pid in self._children:
            return True
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return not _is_zombie(pid)

    def signal(self, pid: int, sig: int) -> bool:
        if pid <= 0:
            return False
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    def signal_group(self, pgid: int, sig: int) -> bool:
        if pgid <= 1:
            return False
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    def vm_exists(self) -> bool:
        return (self._vmm_dir / self.name).exists()

    def boot_output(self) -> bytes:
        start = self._read_pid(BOOT_LOG_START) or 0
        try:
            with open(self.dir / BOOT_LOG, "rb") as log:
                size = os.fstat(log.fileno()).st_size
                # A log cut shorter than the boot's start was rotated: all of it is recent.
                begin = start if start <= size else 0
                log.seek(max(begin, size - BOOT_OUTPUT_LIMIT))
                return log.read(BOOT_OUTPUT_LIMIT)
        except (FileNotFoundError, NotADirectoryError):
            return b""

    def destroy(self) -> None:
        self._bhyvectl("--destroy")

    def force_poweroff(self) -> None:
        self._bhyvectl("--force-poweroff")

    def set_outcome(self, outcome: str) -> None:
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_atomic(self.dir / "outcome", outcome + "\n")

    def forget(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    # ---- internals ---------------------------------------------------------------------

    def _bhyvectl(self, flag: str) -> None:
        result = self._runner.run(["bhyvectl", f"--vm={self.name}", flag])
        if not result.ok:
            raise command_error(result)

    def _reap(self) -> None:
        for pid, proc in list(self._children.items()):
            if proc.poll() is not None:
                del self._children[pid]

    def _read(self, record: str) -> str | None:
        try:
            text = (self.dir / record).read_text().strip()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return text or None

    def _read_pid(self, record: str) -> int | None:
        text = self._read(record)
        return int(text) if text is not None and text.isdigit() else None

    def _read_exit(self) -> ExitStatus | None:
        text = self._read("exit")
        if text is None:
            return None
        phase, _, status = text.partition(" ")
        if phase not in ("loader", "bhyve") or not status.isdigit():
            return ExitStatus(code=None, signal=None)
        return ExitStatus.from_shell("loader" if phase == "loader" else "bhyve", int(status))

    def _age(self, record: str) -> float | None:
        try:
            mtime = (self.dir / record).stat().st_mtime
        except FileNotFoundError:
            return None
        return max(0.0, self._wall_clock() - mtime)


def _is_zombie(pid: int) -> bool:
    """A dead process nobody has reaped yet. FreeBSD's init reaps orphans at once, and our own
    children are reaped through their Popen, so only Linux (the simulated host, whose init may
    be a container's that reaps nothing) needs this; FreeBSD has no /proc to ask."""
    if sys.platform != "linux":
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] == ["Z"]
