"""Test controls over simulated guests, their VMs and their loaders (a part of SimulatedHost).

Owns what a test may make a guest or a loader do: power off, reboot, fail, ignore ACPI, quit
the loader menu, run out of memory; and what it may read back about them. It works without
/proc: guests are found through their own records (procs.py).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Literal

from reconciler.sim import state as st
from reconciler.sim.procs import bhyve_pid, guest_dir
from reconciler.sim.vmm import tell_guest

# What a running guest can be made to do, and the status its bhyve then exits with
# (bhyve(8) EXIT STATUS; "fail" is an error exit that does not suspend the VM).
EXIT_STATUS = {"reboot": 0, "poweroff": 1, "halt": 2, "triple-fault": 3, "fail": 4}
LoaderCall = Literal["vm_create", "vm_setup_memory"]


class GuestControls:
    """Guest and loader controls; SimulatedHost provides `root`."""

    root: Path

    def _guest_dir(self, name: str) -> Path:
        directory = Path(guest_dir(str(self.root), name))
        directory.mkdir(parents=True, exist_ok=True)
        return directory

    def set_acpi(self, name: str, honour: bool) -> None:
        """Whether guest `name` powers off on SIGTERM (True) or ignores it (False)."""
        marker = self._guest_dir(name) / "noacpi"
        if honour:
            marker.unlink(missing_ok=True)
        else:
            marker.touch()

    def guest_do(self, name: str, what: str) -> None:
        """reboot | poweroff | halt | triple-fault | fail: the running bhyve exits 0/1/2/3/4."""
        if what not in EXIT_STATUS:
            raise ValueError(f"guest_do: {what!r} is not one of {', '.join(EXIT_STATUS)}")
        if not tell_guest(str(self.root), name, EXIT_STATUS[what]):
            raise LookupError(f"no simulated bhyve runs for guest {name}")

    def set_loader_exit(self, name: str, status: int) -> None:
        """The next bhyveload or grub-bhyve run for `name` exits with `status` (once), as a
        loader menu's `quit` (1) or `reboot` (2) does: VM set up, nothing printed."""
        with st.Store(str(self.root)) as store:
            guest = store.state["guests"].setdefault(name, st.new_guest())
            guest["loader_exit"] = status
            store.dirty = True

    def fail_loaders(self, count: int = 1, call: LoaderCall = "vm_setup_memory") -> None:
        """The next `count` loader runs (bhyveload, grub-bhyve) fail for lack of memory
        (ENOMEM) in `call`, printing what each loader prints. set_physmem() is the other way."""
        if count < 1:
            raise ValueError("fail_loaders: count must be at least 1")
        with st.Store(str(self.root)) as store:
            store.state["loader_fault"] = {"call": call, "count": count}
            store.dirty = True

    def vm_memory(self, name: str) -> int | None:
        """The memory VM `name` holds (0 before a loader set it up), None without the VM."""
        vm = st.read_state(str(self.root))["vms"].get(name)
        return None if vm is None else vm["memsize"]

    def bhyve_pid(self, name: str) -> int | None:
        return bhyve_pid(str(self.root), name)

    def wait_for_bhyve(self, name: str, timeout: float = 10.0) -> int:
        """The pid of guest `name`'s bhyve once it is ready for signals."""
        deadline = time.monotonic() + timeout
        while True:
            pid = self.bhyve_pid(name)
            if pid is not None:
                return pid
            if time.monotonic() > deadline:
                raise TimeoutError(f"no simulated bhyve for guest {name} after {timeout}s")
            time.sleep(0.005)

    def boots(self, name: str) -> int:
        guest = st.read_state(str(self.root))["guests"].get(name)
        return 0 if guest is None else guest["boots"]
