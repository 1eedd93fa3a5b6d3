"""The real `GuestOps`: one guest's boot shim, its records in `run_dir`, signals and bhyvectl.

Owns `run_dir/guests/NAME/` (the shim's pid and exit records, the supervisor's outcome note, the
boot's output in `boot.log`) and the shim processes this daemon started, which it reaps so no
zombies pile up. Commands go through the `Runner`; it decides nothing: that is the supervisor's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from importlib.resources import as_file, files
from pathlib import Path

from reconciler.errors import HostCommandError
from reconciler.host.files import write_atomic
from reconciler.host.runner import Runner
from reconciler.policy import ExitStatus
from reconciler.supervise import BootPlan, BootRecord

GUESTS_SUBDIR = "guests"
BOOT_LOG = "boot.log"
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


class ShimGuestOps:
    """`GuestOps` for one guest on a real (or simulated) host."""

    def __init__(
        self,
        name: str,
        *,
        runner: Runner,
        run_dir: Path,
        vmm_dir: Path,
        shim: Path | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.dir = guest_run_dir(run_dir, name)
        self._runner = runner
        self._vmm_dir = vmm_dir
        self._shim = shim if shim is not None else shim_path()
        self._wall_clock = wall_clock
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    def spawn(self, boot: BootPlan) -> int:
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        for path, content in boot.files:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            write_atomic(Path(path), content)
        for record in _RECORDS:
            (self.dir / record).unlink(missing_ok=True)
        loader = boot.loader or ()
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
            raise HostCommandError(result.argv, result.status, result.stderr)

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
    """A dead process nobody has reaped yet (Linux /proc only; FreeBSD's init reaps orphans)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] == ["Z"]
