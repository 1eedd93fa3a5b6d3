"""vmm.ko and libvmmapi as the simulated tools see them: VMs, their memory, vCPUs and suspend.

Owns the kernel side every VM tool shares (bhyve, bhyvectl, bhyveload, grub-bhyve): creating,
opening, re-initialising and destroying a VM, setting up its memory against the host's memory,
activating its vCPUs and suspending it, each failing with the errno the kernel returns. A VM is
a record in the state plus its /dev/vmm/NAME node. Running guests are told what to do through
their directory under ROOT/.sim/guests (an exit status, optional stderr lines, then SIGUSR1).
"""

from __future__ import annotations

import os
import sys

from reconciler.sim import state as st
from reconciler.sim.procs import bhyve_pid, forget_exit, last_exit

ENOENT, ENXIO, ENOMEM, EBUSY, EEXIST, EINVAL, EALREADY = 2, 6, 12, 16, 17, 22, 37
STRERROR = {
    ENOENT: "No such file or directory",
    ENXIO: "Device not configured",
    ENOMEM: "Cannot allocate memory",
    EBUSY: "Device busy",
    EEXIST: "File exists",
    EINVAL: "Invalid argument",
    EALREADY: "Operation already in progress",
}
# enum vm_suspend_how (sys/amd64/include/vmm.h) and the status bhyve's vmexit_suspend() exits
# with for each (usr.sbin/bhyve/bhyverun.c, later amd64/vmexit.c): 0 reset, 1 poweroff, ...
RESET, POWEROFF, HALT, TRIPLEFAULT = 1, 2, 3, 4
EXIT_FOR_HOW = {RESET: 0, POWEROFF: 1, HALT: 2, TRIPLEFAULT: 3}
HOW_FOR_EXIT = {status: how for how, status in EXIT_FOR_HOW.items()}
# SIGUSR1 without `import signal`, whose enums cost more than the rest of a tool's start-up.
_SIGUSR1 = 30 if sys.platform.startswith(("freebsd", "darwin")) else 10
_MB = 1 << 20


class VmmError(Exception):
    """A failed vmm ioctl or sysctl, carrying its errno."""

    def __init__(self, errno: int) -> None:
        super().__init__(STRERROR.get(errno, f"Unknown error: {errno}"))
        self.errno = errno


def parse_memsize(text: str) -> int | None:
    """lib/libvmmapi/vmmapi.c vm_parse_memsize(): a plain number below 1M means MB, else
    expand_number(3) with an optional single k/m/g/t/p/e suffix."""
    if text.isdigit():
        value = int(text)
        return value * _MB if value < _MB else value
    number, suffix = text[:-1], text[-1:].lower()
    shifts = {"b": 0, "k": 10, "m": 20, "g": 30, "t": 40, "p": 50, "e": 60}
    if not number.isdigit() or suffix not in shifts:
        return None
    return int(number) << shifts[suffix]


def vm_path(root: str, name: str) -> str:
    return os.path.join(st.vmm_dir(root), name)


def valid_name(name: str) -> bool:
    # sys/amd64/vmm/vmm_dev.c: names become devfs nodes (MAKEDEV_CHECKNAME), at most
    # VM_MAX_NAMELEN (229 bytes on 13 and later, reference §3.8).
    return bool(name) and "/" not in name and name not in (".", "..") and len(name) <= 229


def take_loader_fault(store: st.Store, call: str) -> bool:
    """Whether a test asked this loader call to fail for lack of memory (used up once)."""
    fault = store.state["loader_fault"]
    if fault is None or fault["call"] != call:
        return False
    fault["count"] -= 1
    if fault["count"] <= 0:
        store.state["loader_fault"] = None
    store.dirty = True
    return True


def vm_create(store: st.Store, name: str, *, loader: bool = False) -> None:
    """libvmmapi vm_create(): load vmm.ko if it is missing, then sysctl hw.vmm.create."""
    state = store.state
    # lib/libvmmapi/vmmapi.c vm_create() (13.x and later): "Try to load vmm(4) module before
    # creating a guest." -- modfind("vmm") < 0 -> kldload("vmm").
    if "vmm" not in st.modules_present(state):
        st.kld_load(state, "vmm.ko")
        store.dirty = True
    if not valid_name(name):
        raise VmmError(EINVAL)
    if name in state["vms"]:
        raise VmmError(EEXIST)
    if loader and take_loader_fault(store, "vm_create"):
        raise VmmError(ENOMEM)
    state["vms"][name] = {"memsize": 0, "active": False, "suspend": 0}
    store.dirty = True
    os.makedirs(st.vmm_dir(store.root), exist_ok=True)
    with open(vm_path(store.root, name), "a"):
        pass
    forget_exit(store.root, name)


def vm_open(store: st.Store, name: str) -> st.Vm:
    """libvmmapi vm_open(): open /dev/vmm/NAME, ENOENT when there is no such VM."""
    vm = store.state["vms"].get(name)
    if vm is None or not os.path.exists(vm_path(store.root, name)):
        raise VmmError(ENOENT)
    return vm


def suspended(store: st.Store, name: str) -> int:
    """vm->suspend: set by vm_suspend(), or by the guest when its bhyve exited on its own."""
    vm = store.state["vms"][name]
    if vm["suspend"]:
        return vm["suspend"]
    status = last_exit(store.root, name)
    if status in HOW_FOR_EXIT and bhyve_pid(store.root, name) is None:
        return HOW_FOR_EXIT[status]
    return 0


def vm_reinit(store: st.Store, name: str) -> None:
    """sys/amd64/vmm/vmm.c vm_reinit(): only when every active vCPU is suspended, else EBUSY.

    A bhyve that was killed (or that exited with an error) never suspended its vCPUs, so its VM
    can only be destroyed; one that exited through vmexit_suspend() can be reused.
    """
    vm = vm_open(store, name)
    if vm["active"] and (bhyve_pid(store.root, name) is not None or not suspended(store, name)):
        raise VmmError(EBUSY)
    # vm_init(vm, false) clears active and suspended CPUs and vm->suspend; system memory stays.
    vm["active"] = False
    vm["suspend"] = 0
    forget_exit(store.root, name)
    store.dirty = True


def vm_setup_memory(store: st.Store, name: str, memsize: int, *, loader: bool = False) -> None:
    """libvmmapi vm_setup_memory() -> vm_alloc_memseg(): an existing segment of another size
    is EINVAL; a new one must fit in the host's memory (hw.physmem less the other VMs')."""
    state = store.state
    vm = vm_open(store, name)
    if vm["memsize"]:
        if vm["memsize"] != memsize:
            raise VmmError(EINVAL)
        return
    if loader and take_loader_fault(store, "vm_setup_memory"):
        raise VmmError(ENOMEM)
    others = sum(v["memsize"] for n, v in state["vms"].items() if n != name)
    if others + memsize > int(state["sysctl"]["hw.physmem"]):
        raise VmmError(ENOMEM)
    vm["memsize"] = memsize
    store.dirty = True


def vm_activate_cpu(store: st.Store, name: str) -> None:
    """vmm.c vm_activate_cpu(): EBUSY for a vCPU that is already active."""
    vm = vm_open(store, name)
    if vm["active"]:
        raise VmmError(EBUSY)
    vm["active"] = True
    store.dirty = True


def vm_suspend(store: st.Store, name: str, how: int) -> None:
    """vmm.c vm_suspend(): EALREADY once the VM is suspended; else every vCPU exits."""
    vm = vm_open(store, name)
    if suspended(store, name):
        raise VmmError(EALREADY)
    vm["suspend"] = how
    store.dirty = True
    tell_guest(store.root, name, EXIT_FOR_HOW[how])


def vm_destroy(store: st.Store, name: str) -> None:
    """sysctl hw.vmm.destroy; a bhyve still running the VM fails on its next VM_RUN."""
    state = store.state
    vm_open(store, name)
    del state["vms"][name]
    store.dirty = True
    os.unlink(vm_path(store.root, name))
    if st.release_major(state) >= 15:
        # 15: vmmdev_lookup_and_destroy() suspends with VM_SUSPEND_DESTROY and
        # amd64/vmexit.c vmexit_suspend() exits BHYVE_EXIT_ERROR (4) without a word.
        tell_guest(store.root, name, 4)
    else:
        # 13.x/14.x: the dying cdev answers VM_RUN with ENXIO; vm_loop() prints its error and
        # fbsdrun_start_thread() calls exit(1) (bhyverun.c; reference §8.2).
        tell_guest(store.root, name, 1, f"vm_run error -1, errno {ENXIO}")


def tell_guest(root: str, name: str, status: int, stderr: str = "") -> bool:
    """Make the running bhyve of `name` exit with `status`; False when none runs."""
    pid = bhyve_pid(root, name)
    if pid is None:
        return False
    with open(os.path.join(st.guest_dir(root, name), "cmd"), "w") as f:
        f.write(f"{status}\n{stderr}\n" if stderr else f"{status}\n")
    try:
        os.kill(pid, _SIGUSR1)
    except ProcessLookupError:
        return False
    return True
