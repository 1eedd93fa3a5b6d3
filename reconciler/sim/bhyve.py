"""Simulated bhyve(8) start-up, up to the moment it becomes the long-running guest (bhyve.sh).

Owns main()'s order in usr.sbin/bhyve/bhyverun.c (13.x and 14.x; 15 where it differs): options,
memsize, opening or creating the VM, its memory, the PCI devices in slot order (LPC with the
bootrom and consoles, disks, taps), then the boot vCPU. Every failure prints what bhyve prints
and exits with its status; the VM semantics are vmm.py's. On success the tool execs bhyve.sh
with the same pid, as the process the supervisor spawned.
"""

from __future__ import annotations

import os
import sys

from reconciler.sim import state as st
from reconciler.sim import vmm
from reconciler.sim.args import UsageError, getopt
from reconciler.sim.loaders import console_ok
from reconciler.sim.procs import bhyve_pid, forget_exit

TYPE_CHECKING = False
if TYPE_CHECKING:
    from reconciler.sim.tools import Output

# bhyverun.c main() optstr (14.x, with -r from BHYVE_SNAPSHOT builds).
_OPTIONS = "aehuwxACDHIPSWYk:f:o:p:G:c:s:m:l:K:U:r:"
_USAGE = (
    "Usage: bhyve [-AaCDeHhPSuWwxY]\n"
    "       [-c [[cpus=]numcpus][,sockets=n][,cores=n][,threads=n]]\n"
    "       [-G port] [-k file] [-l lpc] [-m mem] [-o var=value]\n"
    "       [-p vcpu:hostcpu] [-r file] [-s pci] [-U uuid] vmname"
)
_DISKS = ("virtio-blk", "ahci-hd", "ahci-cd", "nvme", "virtio-scsi")
_NICS = ("virtio-net", "e1000")
_EX_USAGE, _EX_OSERR = 64, 71

# One PCI function to initialise: (bus, slot, function), emulation, its configuration.
Device = tuple[tuple[int, int, int], str, list[str]]


def _slot(text: str) -> tuple[int, int, int]:
    numbers = [int(p) if p.isdigit() else 0 for p in text.split(":")]
    if len(numbers) == 3:
        return numbers[0], numbers[1], numbers[2]
    return 0, numbers[0], numbers[1] if len(numbers) > 1 else 0


def _devices(options: list[tuple[str, str]]) -> list[Device]:
    """-s options in pci_emul.c init_pci()'s order: bus, then slot, then function."""
    found = []
    for letter, value in options:
        parts = value.split(",")
        if letter == "s" and len(parts) >= 2:
            found.append((_slot(parts[0]), parts[1], parts[2:]))
    return sorted(found, key=lambda device: device[0])


def _lpc(options: list[tuple[str, str]]) -> tuple[list[str], list[str]]:
    """(bootrom and its variable file, com port backends) named by -l."""
    firmware: list[str] = []
    consoles: list[str] = []
    for letter, value in options:
        parts = value.split(",")
        if letter == "l" and len(parts) >= 2:
            if parts[0] == "bootrom":
                firmware = parts[1:3]
            elif parts[0].startswith("com"):
                consoles.append(parts[1])
    return firmware, consoles


def _init_failed(store: st.Store, out: Output, errno: int) -> int:
    # bhyverun.c main(): `if (init_pci(ctx) != 0)`; 13.x perror()s, 14.x and 15 EPRINTLN.
    if st.release_major(store.state) >= 14:
        out.error(f"Device emulation initialization error: {vmm.STRERROR[errno]}")
    else:
        out.error(f"device emulation initialization error: {vmm.STRERROR[errno]}")
    return 4


def _init_lpc(store: st.Store, options: list[tuple[str, str]], out: Output) -> int | None:
    """pci_lpc.c lpc_init(): the bootrom (bootrom.c bootrom_loadrom()), then the com ports."""
    firmware, consoles = _lpc(options)
    if firmware and not os.path.exists(st.host_path(store.root, firmware[0])):
        out.error(f'Error opening bootrom "{firmware[0]}": No such file or directory')
        return _init_failed(store, out, vmm.ENOENT)
    if len(firmware) > 1 and not os.path.exists(st.host_path(store.root, firmware[1])):
        out.error(f'Error opening bootrom variable file "{firmware[1]}": No such file or directory')
        return _init_failed(store, out, vmm.ENOENT)
    for device in consoles:
        if not console_ok(store, device):
            out.error(f"Unable to initialize backend '{device}' for LPC device com1")
            return _init_failed(store, out, vmm.ENOENT)
    return None


def _tap_errno(store: st.Store, tap: str) -> int | None:
    """open("/dev/tapN") in net_backends.c tap_init(): EBUSY while another bhyve holds it
    (if_tuntap.c tunopen()), ENOENT without the node (no if_tuntap, or no devfs cloning)."""
    state = store.state
    if "if_tuntap" not in st.modules_present(state):
        return vmm.ENOENT
    iface = state["interfaces"].get(tap)
    if iface is None:
        cloning = state["sysctl"].get("net.link.tap.devfs_cloning") == "1"
        return None if cloning else vmm.ENOENT
    if iface["kind"] != "tap":
        return vmm.ENOENT
    holder = iface["opened_by"]
    return vmm.EBUSY if holder is not None and bhyve_pid(store.root, holder) else None


def _init_pci(store: st.Store, options: list[tuple[str, str]], out: Output) -> int | None:
    lpc_done = False
    for _, emulation, conf in _devices(options):
        if emulation == "lpc":
            lpc_done = True
            failed = _init_lpc(store, options, out)
            if failed is not None:
                return failed
        elif emulation in _DISKS or emulation == "ahci":
            paths = [c.split(":", 1)[1] for c in conf if c[:3] in ("hd:", "cd:")]
            if emulation != "ahci" and conf:
                paths = [conf[0].removeprefix("path=")]
            for path in paths:
                if not os.path.exists(st.host_path(store.root, path)):
                    # block_if.c blockif_open(): warn(); pci_virtio_block.c also perror()s.
                    out.error(
                        f"bhyve: Could not open backing file: {path}: No such file or directory"
                    )
                    if emulation == "virtio-blk":
                        out.error("Could not open backing file: No such file or directory")
                    return _init_failed(store, out, vmm.ENOENT)
        elif emulation in _NICS and conf and conf[0].startswith("tap"):
            errno = _tap_errno(store, conf[0])
            if errno is not None:
                out.error(f"open of tap device /dev/{conf[0]} failed")
                return _init_failed(store, out, errno)
    return None if lpc_done else _init_lpc(store, options, out)


def _open_vm(store: st.Store, name: str, romboot: bool, out: Output) -> int | None:
    """bhyverun.c do_open(); the VM is set up by a loader unless a bootrom boots it."""
    if st.release_major(store.state) >= 15:
        # 15: vm_openf(name, romboot ? VMMAPI_OPEN_REINIT : 0), create only with a bootrom.
        try:
            vmm.vm_open(store, name)
            if romboot:
                vmm.vm_reinit(store, name)
            return None
        except vmm.VmmError as exc:
            if exc.errno != vmm.ENOENT:
                out.error(f"bhyve: vm_openf: {exc}")
                return 4
        if not romboot:
            out.error("bhyve: no bootrom was configured")
            return 4
        try:
            vmm.vm_create(store, name)
        except vmm.VmmError as exc:
            out.error(f"bhyve: vm_openf: {exc}")
            return 4
        return None
    try:
        vmm.vm_create(store, name)
    except vmm.VmmError as exc:
        if exc.errno != vmm.EEXIST:
            out.error(f"vm_create: {exc}")
            return 4
        if romboot:
            try:
                vmm.vm_reinit(store, name)
            except vmm.VmmError as error:
                out.error(f"vm_reinit: {error}")
                return 4
        return None
    if not romboot:
        # "If the virtual machine was just created then a bootrom must be configured."
        out.error("virtual machine cannot be booted")
        return 4
    return None


def _parse(args: list[str], out: Output) -> tuple[list[tuple[str, str]], str, int] | int:
    try:
        options, names = getopt(args, _OPTIONS)
    except UsageError as exc:
        out.error(f"bhyve: {exc}")
        out.error(_USAGE)
        return 1
    if ("h", "") in options:
        out.error(_USAGE)
        return 0
    if len(names) != 1:
        # main(): `if (argc > 1) usage(1)`; no name at all is usage(1) too.
        out.error(_USAGE)
        return 1
    text = next((v for letter, v in reversed(options) if letter == "m"), "256M")
    memsize = vmm.parse_memsize(text)
    if memsize is None:
        out.error(f"bhyve: invalid memsize '{text}'")
        return _EX_USAGE
    return options, names[0], memsize


def bhyve(store: st.Store, args: list[str], out: Output) -> int:
    parsed = _parse(args, out)
    if isinstance(parsed, int):
        return parsed
    options, name, memsize = parsed
    firmware, _ = _lpc(options)
    failed = _open_vm(store, name, bool(firmware), out)
    if failed is not None:
        return failed
    try:
        vmm.vm_setup_memory(store, name, memsize)
    except vmm.VmmError as exc:
        out.error(f"Unable to setup memory ({exc.errno})")
        return 4
    failed = _init_pci(store, options, out)
    if failed is not None:
        return failed
    try:
        vmm.vm_activate_cpu(store, name)
    except vmm.VmmError as exc:
        # fbsdrun_addcpu(): err(EX_OSERR, "could not activate CPU %d").
        out.error(f"bhyve: could not activate CPU 0: {exc}")
        return _EX_OSERR
    _open_taps(store, name, options)
    return _become_guest(store, name, options, out)


def _open_taps(store: st.Store, name: str, options: list[tuple[str, str]]) -> None:
    from reconciler.sim import net

    interfaces = store.state["interfaces"]
    for _, emulation, conf in _devices(options):
        if emulation not in _NICS or not conf or not conf[0].startswith("tap"):
            continue
        tap = conf[0]
        if tap not in interfaces:
            # devfs cloning: opening /dev/tapN creates tapN, in no bridge.
            interfaces[tap] = net.new_iface(store.state, "tap")
        interfaces[tap]["opened_by"] = name
        # net_backends.c tap_init(): "Try to UP the interface rather than relying on
        # net.link.tap.up_on_open."
        interfaces[tap]["up"] = True
    store.dirty = True


def _open_console(store: st.Store, name: str, options: list[tuple[str, str]], out: Output) -> str:
    """The com1 nmdm pair, its A side for the guest (fd 4 of bhyve.sh); its B side's path
    under the root, or "" when com1 is no nmdm device (or no pty could be had)."""
    from reconciler.sim import nmdm

    _, consoles = _lpc(options)
    if not consoles or nmdm.b_side(consoles[0]) is None:
        return ""
    memory = next((v for letter, v in reversed(options) if letter == "m"), "256M")
    cpus = next((v for letter, v in reversed(options) if letter == "c"), "1")
    release = store.state["sysctl"].get("kern.osrelease", st.DEFAULT_RELEASE)
    pair = nmdm.open_pair(store.root, consoles[0], nmdm.banner(release, name, cpus, memory))
    if pair is None:
        return ""
    out.exec_fds[nmdm.CONSOLE_FD] = pair[0]
    return pair[1]


def _become_guest(store: st.Store, name: str, options: list[tuple[str, str]], out: Output) -> int:
    guests = store.state["guests"]
    guest = guests.setdefault(name, st.new_guest())
    guest["boots"] += 1
    store.dirty = True
    directory = st.guest_dir(store.root, name)
    os.makedirs(directory, exist_ok=True)
    for stale in ("cmd", "pid"):
        path = os.path.join(directory, stale)
        if os.path.exists(path):
            os.unlink(path)
    forget_exit(store.root, name)
    how = vmm.suspended(store, name)
    if how:
        # Suspended before it ran (bhyvectl --force-*): the first VM_RUN returns the
        # suspend exit and vmexit_suspend() exits with its status.
        status = vmm.EXIT_FOR_HOW[how]
        with open(os.path.join(directory, "exit"), "w") as f:
            f.write(f"{status}\n")
        return status
    if not os.path.exists(os.path.join(directory, "wake")):
        os.mkfifo(os.path.join(directory, "wake"))
    here = os.path.dirname(os.path.abspath(__file__))
    console = _open_console(store, name, options, out)
    out.exec_file = "/bin/sh"
    # argv[0] stands in for bhyve's setproctitle("bhyve: NAME"). What follows the guest's
    # directory is for its console getty (console.py): the B side, the interpreter, the package.
    package = os.path.dirname(os.path.dirname(here))
    script = os.path.join(here, "bhyve.sh")
    out.exec_argv = [f"bhyve: {name}", script, directory, console, sys.executable, package]
    return 0
