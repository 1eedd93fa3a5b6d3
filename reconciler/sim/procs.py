"""Which simulated bhyve processes are alive, and how the last one of a guest ended.

Owns the sim's only use of Linux's /proc: telling a live simulated bhyve from a zombie or from
an unrelated process that reused its pid. FreeBSD has no /proc by default (reference §8.10), so
nothing here is offered to the driver as a host fact; where /proc is absent (or PROC_ROOT is
pointed elsewhere, as a test does) the answer comes from the guest's own records (its pid file,
written by bhyve.sh once its traps are set and removed when it ends) and kill(pid, 0).
"""

from __future__ import annotations

import os

# The Linux procfs the sim may consult for its own processes; never a simulated FreeBSD path.
PROC_ROOT = "/proc"


def guest_dir(root: str, name: str) -> str:
    return os.path.join(root, ".sim", "guests", name)


def bhyve_pid(root: str, name: str) -> int | None:
    """The pid of the live simulated bhyve of guest `name`, if one runs."""
    try:
        with open(os.path.join(guest_dir(root, name), "pid")) as f:
            pid = int(f.read().strip() or "0")
    except (OSError, ValueError):
        return None
    return pid if pid > 0 and _is_sim_bhyve(pid) else None


def _is_sim_bhyve(pid: int) -> bool:
    if os.path.isdir(os.path.join(PROC_ROOT, "self")):
        # A zombie (killed, not yet reaped) has an empty cmdline: its tap is already closed.
        try:
            with open(os.path.join(PROC_ROOT, str(pid), "cmdline"), "rb") as f:
                return b"bhyve.sh" in f.read()
        except OSError:
            return False
    # Without /proc the pid file is the record: bhyve.sh removes it when it ends on its own.
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def last_exit(root: str, name: str) -> int | None:
    """The status the guest's last bhyve exited with on its own (bhyve.sh's record), if any."""
    try:
        with open(os.path.join(guest_dir(root, name), "exit")) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def forget_exit(root: str, name: str) -> None:
    # Callers hold the state lock, and only they and bhyve.sh (which is gone) write the record.
    path = os.path.join(guest_dir(root, name), "exit")
    if os.path.exists(path):
        os.unlink(path)
