"""What the simulator's tests share: the shapes of its fixtures (a tool run, a bhyve started), the
Handbook guest, waiting for a guest."""

from __future__ import annotations

import subprocess
import time
from typing import Protocol

from reconciler.sim import SimulatedHost


class Run(Protocol):
    """Run one simulated tool by name through PATH, without a shell, as the driver does."""

    def __call__(self, *argv: str) -> subprocess.CompletedProcess[str]: ...


class Boot(Protocol):
    """Start a simulated bhyve with `argv`, as the supervisor would."""

    def __call__(self, *argv: str) -> subprocess.Popen[str]: ...


GUEST = "guestname"
DISK = "/vm/guest.img"
# The Handbook's disk-boot command line as vmrun.sh builds it (reference §2.6).
HANDBOOK_ARGV = (
    "-c", "4", "-m", "1024M", "-H", "-A", "-P",
    "-s", "0:0,hostbridge", "-s", "1:0,lpc",
    "-s", "2:0,virtio-net,tap0", "-s", f"3:0,virtio-blk,{DISK}",
    "-l", "com1,stdio", GUEST,
)  # fmt: skip
# vmrun.sh's loader run for that guest: bhyveload creates the VM and sets up its memory.
LOAD_ARGV = ("bhyveload", "-c", "stdio", "-m", "1024M", "-d", DISK, GUEST)


def wait_running(host: SimulatedHost, process: subprocess.Popen[str], name: str) -> int:
    """The guest's bhyve pid once it is ready for signals; fails at once if bhyve exits."""
    deadline = time.monotonic() + 10
    while True:
        pid = host.bhyve_pid(name)
        if pid is not None:
            return pid
        if process.poll() is not None:
            stderr = process.stderr.read() if process.stderr else ""
            raise AssertionError(f"bhyve exited {process.returncode}: {stderr!r}")
        assert time.monotonic() < deadline, f"no simulated bhyve for {name}"
        time.sleep(0.005)


def fails(process: subprocess.Popen[str]) -> tuple[int, str]:
    """A bhyve that never became a guest: its status and what it printed."""
    status = process.wait(timeout=10)
    assert process.stderr is not None
    return status, process.stderr.read()
