"""Simulated bhyvectl(8), bhyveload(8), grub-bhyve and bhyve(8).

Owns the VM side of the sim: /dev/vmm entries (plain files), loader runs, and the set-up of a
simulated bhyve before it becomes the long-running bhyve.sh (same pid, via exec). Checks and
messages follow reference §3 and §6. Running guests are told what to do through their
directory under ROOT/.sim/guests (an exit status in `cmd`, then SIGUSR1).
"""

from __future__ import annotations

import os
import sys

from reconciler.sim import state as st

TYPE_CHECKING = False
if TYPE_CHECKING:
    from reconciler.sim.tools import Output

EXIT_STATUS = {"reboot": 0, "poweroff": 1, "halt": 2, "triple-fault": 3, "fail": 4}
# SIGUSR1 without `import signal`, whose enums cost more than the rest of a tool's start-up.
_SIGUSR1 = 30 if sys.platform.startswith(("freebsd", "darwin")) else 10
_ENOENT = "No such file or directory"
_MEM_UNITS = {"": 1 << 20, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def _vm_path(root: str, name: str) -> str:
    return os.path.join(st.vmm_dir(root), name)


def _vm_exists(root: str, name: str) -> bool:
    return os.path.exists(_vm_path(root, name))


def _create_vm(root: str, name: str) -> None:
    os.makedirs(st.vmm_dir(root), exist_ok=True)
    with open(_vm_path(root, name), "a"):
        pass


def _valid_name(name: str) -> bool:
    return bool(name) and "/" not in name and name not in (".", "..") and len(name) <= 229


def _memsize(text: str) -> int | None:
    number = text.rstrip("KkMmGgTt")
    unit = text[len(number) :].upper()
    if not number.isdigit() or len(unit) > 1:
        return None
    return int(number) * _MEM_UNITS[unit]


def tell_guest(root: str, name: str, status: int) -> bool:
    """Make the running bhyve of `name` exit with `status`; False when none runs."""
    pid = st.bhyve_pid(root, name)
    if pid is None:
        return False
    directory = st.guest_dir(root, name)
    with open(os.path.join(directory, "cmd"), "w") as f:
        f.write(f"{status}\n")
    try:
        os.kill(pid, _SIGUSR1)
    except ProcessLookupError:
        return False
    return True


def _console_ok(store: st.Store, device: str) -> bool:
    """Whether a console device (`-c` of a loader, `-l com1,DEV` of bhyve) can be opened."""
    if device == "stdio" or device.startswith("tcp="):
        return True
    if device.startswith("/dev/nmdm"):
        # nmdm pairs are created on open, but only once nmdm.ko is in the kernel.
        return "nmdm" in st.modules_present(store.state)
    return os.path.exists(st.host_path(store.root, device))


def _guest(store: st.Store, name: str) -> st.Guest:
    guests = store.state["guests"]
    if name not in guests:
        guests[name] = st.new_guest()
        store.dirty = True
    return guests[name]


def _loader_status(store: st.Store, name: str) -> int:
    """0, or the status a test asked the next loader run of `name` to exit with (used once)."""
    guest = store.state["guests"].get(name)
    if guest is None or guest["loader_exit"] is None:
        return 0
    status = guest["loader_exit"]
    guest["loader_exit"] = None
    store.dirty = True
    return status


_BHYVECTL_USAGE = (
    "Usage: bhyvectl --vm=<vmname>\n"
    "       [--create]\n"
    "       [--destroy]\n"
    "       [--force-reset]\n"
    "       [--force-poweroff]"
)


def bhyvectl(store: st.Store, args: list[str], out: Output) -> int:
    name: str | None = None
    actions: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("--vm="):
            name = arg[len("--vm=") :]
        elif arg == "--vm" and i + 1 < len(args):
            i += 1
            name = args[i]
        elif arg in ("--create", "--destroy", "--force-reset", "--force-poweroff", "--get-stats"):
            actions.append(arg)
        else:
            out.error(_BHYVECTL_USAGE)
            return 1
        i += 1
    if not name:
        out.error(_BHYVECTL_USAGE)
        return 1
    root = store.root
    vmm_loaded = "vmm" in st.modules_present(store.state)
    if "--create" in actions:
        if not vmm_loaded:
            out.error("vm_create: No such file or directory")
            return 1
        if _vm_exists(root, name):
            out.error("vm_create: File exists")
            return 1
        _create_vm(root, name)
    if not _vm_exists(root, name):
        out.error(f"vm_open: {name} could not be opened: No such file or directory")
        return 1
    if "--get-stats" in actions:
        out.print("vcpu0 stats:")
        out.print(f"{'number of times in/out was intercepted':<40}\t0")
    if "--force-reset" in actions:
        tell_guest(root, name, 0)
    if "--force-poweroff" in actions:
        tell_guest(root, name, 1)
    if "--destroy" in actions:
        # The guest's vCPUs fail once the VM is gone, so its bhyve exits with an error.
        tell_guest(root, name, 4)
        os.unlink(_vm_path(root, name))
    return 0


def bhyveload(store: st.Store, args: list[str], out: Output) -> int:
    usage = (
        "usage: bhyveload [-S][-c <console-device>] [-d <disk-path>] [-e <name=value>]\n"
        "\t\t[-h <host-path>] [-m memsize[K|k|M|m|G|g|T|t]] <vmname>"
    )
    try:
        options, names = st.getopt(args, "CSc:d:e:h:l:m:")
    except st.UsageError as exc:
        out.error(f"bhyveload: {exc}")
        out.error(usage)
        return 64
    for letter, value in options:
        if letter == "c" and not _console_ok(store, value):
            out.error(f"bhyveload: Could not open '{value}'")
            return 64
        if letter == "d" and not os.path.exists(st.host_path(store.root, value)):
            out.error(f"bhyveload: Could not open '{value}'")
            return 64
        if letter == "m" and _memsize(value) is None:
            out.error(f"bhyveload: Invalid memsize '{value}'")
            return 64
    if len(names) != 1:
        out.error(usage)
        return 64
    name = names[0]
    if "vmm" not in st.modules_present(store.state) or not _valid_name(name):
        out.error("vm_create: No such file or directory")
        return 1
    _create_vm(store.root, name)
    return _loader_status(store, name)


_GRUB_LONG = {
    "--root": "-r",
    "--device-map": "-m",
    "--memory": "-M",
    "--directory": "-d",
    "--cons-dev": "-c",
    "--evga": "-e",
    "--ncons": "-n",
    "--verbose": "-v",
    "--hold": "-H",
}


def _grub_file(root: str, path: str) -> str | None:
    # The daemon writes device.map and grub.cfg itself, possibly outside the sim root.
    for candidate in (st.host_path(root, path), os.path.abspath(path)):
        if os.path.exists(candidate):
            return candidate
    return None


def grub_bhyve(store: st.Store, args: list[str], out: Output) -> int:
    short: list[str] = []
    for arg in args:
        key, eq, value = arg.partition("=")
        if key in _GRUB_LONG:
            short += [_GRUB_LONG[key], value] if eq else [_GRUB_LONG[key]]
        else:
            short.append(arg)
    try:
        options, names = st.getopt(short, "c:d:eg:hHm:M:nr:Sv")
    except st.UsageError as exc:
        out.error(f"grub-bhyve: {exc}")
        return 1
    values = dict(options)
    if len(names) != 1:
        out.error("grub-bhyve: error: Required VM name parameter not supplied.")
        return 1
    name = names[0]
    if "c" in values and not _console_ok(store, values["c"]):
        out.error(f"grub-bhyve: error: cannot open console device `{values['c']}'.")
        return 1
    if "M" in values and _memsize(values["M"]) is None:
        out.error(f"grub-bhyve: error: invalid memory size `{values['M']}'.")
        return 1
    devices = {"host"}
    if "m" in values:
        device_map = _grub_file(store.root, values["m"])
        if device_map is None:
            out.error(f"grub-bhyve: error: cannot open `{values['m']}': {_ENOENT}.")
            return 1
        with open(device_map) as f:
            for line in f:
                drive, _, path = line.strip().partition(")")
                if not drive.startswith("("):
                    continue
                path = path.strip()
                if not os.path.exists(st.host_path(store.root, path)):
                    out.error(f"grub-bhyve: error: cannot open `{path}': {_ENOENT}.")
                    return 1
                devices.add(drive[1:])
    boot_root = values.get("r", "host")
    if boot_root.split(",")[0] not in devices:
        out.error(f"grub-bhyve: error: disk `{boot_root}' not found.")
        return 1
    if boot_root == "host" and "d" in values and _grub_file(store.root, values["d"]) is None:
        out.error(f"grub-bhyve: error: file `{values['d']}/grub.cfg' not found.")
        return 1
    if "vmm" not in st.modules_present(store.state) or not _valid_name(name):
        out.error(f"grub-bhyve: error: Could not create VM {name}")
        return 1
    _create_vm(store.root, name)
    return _loader_status(store, name)


_BHYVE_OPTIONS = "aehuwxACDHIPSWYc:f:g:G:k:K:l:m:o:p:r:s:U:"
_DISK_EMULATIONS = ("virtio-blk", "ahci-hd", "ahci-cd", "nvme", "virtio-scsi")
_NIC_EMULATIONS = ("virtio-net", "e1000")


def _bhyve_devices(
    options: list[tuple[str, str]],
) -> tuple[list[str], list[str], list[str], list[str]]:
    """(taps, files that must exist, firmware files, consoles) named by a bhyve argv."""
    taps: list[str] = []
    files: list[str] = []
    firmware: list[str] = []
    consoles: list[str] = []
    for letter, value in options:
        parts = value.split(",")
        if letter == "s" and len(parts) >= 3:
            emulation, conf = parts[1], parts[2]
            if emulation in _NIC_EMULATIONS and conf.startswith("tap"):
                taps.append(conf)
            elif emulation in _DISK_EMULATIONS:
                files.append(conf.removeprefix("path=").removeprefix("devpath="))
            elif emulation == "ahci":
                files += [p.split(":", 1)[1] for p in parts[2:] if p[:3] in ("hd:", "cd:")]
        elif letter == "l" and len(parts) >= 2:
            if parts[0] == "bootrom":
                firmware += parts[1:3]
            elif parts[0].startswith("com"):
                consoles.append(parts[1])
    return taps, files, firmware, consoles


def bhyve(store: st.Store, args: list[str], out: Output) -> int:
    state = store.state
    root = store.root
    usage = "Usage: bhyve [-aCDeHhPSuWwxY] [-c [[cpus=]numcpus]...] ... <vm>"
    try:
        options, names = st.getopt(args, _BHYVE_OPTIONS)
    except st.UsageError as exc:
        out.error(f"bhyve: {exc}")
        out.error(usage)
        return 1
    if len(names) != 1:
        out.error(usage)
        return 1
    name = names[0]
    for letter, value in options:
        if letter == "m" and _memsize(value) is None:
            out.error(f"bhyve: invalid memsize '{value}'")
            return 64
    if "vmm" not in st.modules_present(state) or not _valid_name(name):
        out.error("vm_create: No such file or directory")
        return 4
    if st.bhyve_pid(root, name) is not None:
        out.error("Unable to setup memory (17)")
        return 4
    taps, files, firmware, consoles = _bhyve_devices(options)
    for path in firmware[:1]:
        if not os.path.exists(st.host_path(root, path)):
            out.error(f'Error opening bootrom "{path}": No such file or directory')
            return 4
    for path in firmware[1:]:
        if not os.path.exists(st.host_path(root, path)):
            out.error(f'Error opening bootvars "{path}": No such file or directory')
            return 4
    for path in files:
        if not os.path.exists(st.host_path(root, path)):
            out.error(f"Could not open backing file: {path}: No such file or directory")
            out.error("Device emulation initialization error: No such file or directory")
            return 4
    for device in consoles:
        if not _console_ok(store, device):
            out.error(f"Unable to initialize backend '{device}' for LPC device com1")
            return 4
    interfaces = state["interfaces"]
    for tap in taps:
        iface = interfaces.get(tap)
        busy = (
            iface is not None
            and iface["opened_by"] is not None
            and st.bhyve_pid(root, iface["opened_by"]) is not None
        )
        cloning = state["sysctl"].get("net.link.tap.devfs_cloning") == "1"
        if busy or (iface is None and not cloning) or (iface and iface["kind"] != "tap"):
            out.error(f"open of tap device /dev/{tap} failed")
            out.error(f"Could not open backend '{tap}'")
            return 4
    from reconciler.sim import net

    for tap in taps:
        if tap not in interfaces:
            # devfs cloning: opening /dev/tapN creates tapN, in no bridge.
            interfaces[tap] = net.new_iface(state, "tap")
        interfaces[tap]["opened_by"] = name
        # bhyve 14 brings its taps up itself rather than relying on up_on_open.
        interfaces[tap]["up"] = True
    _create_vm(root, name)
    _guest(store, name)["boots"] += 1
    store.dirty = True
    directory = st.guest_dir(root, name)
    os.makedirs(directory, exist_ok=True)
    for stale in ("cmd", "pid"):
        path = os.path.join(directory, stale)
        if os.path.exists(path):
            os.unlink(path)
    if not os.path.exists(os.path.join(directory, "wake")):
        os.mkfifo(os.path.join(directory, "wake"))
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bhyve.sh")
    out.exec_file = "/bin/sh"
    # argv[0] stands in for bhyve's setproctitle("bhyve: NAME").
    out.exec_argv = [f"bhyve: {name}", script, directory]
    return 0
