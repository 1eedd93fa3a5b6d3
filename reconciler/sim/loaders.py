"""Simulated bhyveload(8) and grub-bhyve: argument checks, then create-or-reinit the VM and set
up its memory, then the loader's own exit (0 once a kernel is loaded, or what a test set).

Owns each loader's messages and exit statuses, read from usr.sbin/bhyveload/bhyveload.c and
grub2-bhyve's grub-core/kern/emu/main.c and bhyve_hostif.c. Both exit 1 for a menu `quit` (which
prints nothing) and for a VM they could not create or set up (which prints why): reference §8.3.
"""

from __future__ import annotations

import os

from reconciler.sim import state as st
from reconciler.sim import vmm
from reconciler.sim.args import UsageError, getopt

TYPE_CHECKING = False
if TYPE_CHECKING:
    from reconciler.sim.tools import Output

_ENOENT = "No such file or directory"
_EX_USAGE = 64


def console_ok(store: st.Store, device: str) -> bool:
    """Whether a console device (`-c` of a loader, `-l com1,DEV` of bhyve) can be opened."""
    if device == "stdio" or device.startswith("tcp="):
        return True
    if device.startswith("/dev/nmdm"):
        # nmdm pairs are created on open, but only once nmdm is in the kernel.
        return "nmdm" in st.modules_present(store.state)
    return os.path.exists(st.host_path(store.root, device))


def _loader_status(store: st.Store, name: str) -> int:
    """0, or the status a test asked the next loader run of `name` to exit with (used once).

    A menu `quit` is USERBOOT_EXIT_QUIT (1), `reboot` USERBOOT_EXIT_REBOOT (2), with no message.
    """
    guest = store.state["guests"].get(name)
    if guest is None or guest["loader_exit"] is None:
        return 0
    status = guest["loader_exit"]
    guest["loader_exit"] = None
    store.dirty = True
    return status


def _create_or_reinit(store: st.Store, name: str) -> tuple[str, vmm.VmmError] | None:
    """vm_create(), on EEXIST vm_open() and vm_reinit(): the failing call and its error."""
    try:
        vmm.vm_create(store, name, loader=True)
        return None
    except vmm.VmmError as exc:
        if exc.errno != vmm.EEXIST:
            return "vm_create", exc
    try:
        vmm.vm_reinit(store, name)
    except vmm.VmmError as exc:
        return "vm_reinit", exc
    return None


_BHYVELOAD_USAGE = (
    "usage: bhyveload [-S][-c <console-device>] [-d <disk-path>] [-e <name=value>]\n"
    "                 [-h <host-path>] [-m memsize[K|k|M|m|G|g|T|t]] <vmname>"
)


def _bhyveload_options(store: st.Store, options: list[tuple[str, str]], out: Output) -> int | None:
    """bhyveload.c main()'s getopt loop: errx(EX_USAGE) for what it cannot use; the memsize."""
    memsize = 256 << 20
    loaders = 0
    for letter, value in options:
        if letter == "c" and not console_ok(store, value):
            out.error(f"bhyveload: Could not open '{value}'")
            return None
        if letter == "d" and not os.path.exists(st.host_path(store.root, value)):
            out.error(f"bhyveload: Could not open '{value}'")
            return None
        if letter == "l":
            loaders += 1
            if loaders > 1:
                out.error("bhyveload: -l can only be given once")
                return None
        if letter == "m":
            parsed = vmm.parse_memsize(value)
            if parsed is None:
                out.error(f"bhyveload: Invalid memsize '{value}'")
                return None
            memsize = parsed
    return memsize


def bhyveload(store: st.Store, args: list[str], out: Output) -> int:
    try:
        options, names = getopt(args, "CSc:d:e:h:l:m:")
    except UsageError as exc:
        # getopt's complaint, then usage(): exit(1).
        out.error(f"bhyveload: {exc}")
        out.error(_BHYVELOAD_USAGE)
        return 1
    memsize = _bhyveload_options(store, options, out)
    if memsize is None:
        return _EX_USAGE
    if len(names) != 1:
        out.error(_BHYVELOAD_USAGE)
        return 1
    name = names[0]
    # bhyveload.c: perror("vm_create") / perror("vm_reinit") / perror("vm_setup_memory"),
    # each exit(1).
    failed = _create_or_reinit(store, name)
    if failed is not None:
        out.error(f"{failed[0]}: {failed[1]}")
        return 1
    try:
        vmm.vm_setup_memory(store, name, memsize, loader=True)
    except vmm.VmmError as exc:
        out.error(f"vm_setup_memory: {exc}")
        return 1
    return _loader_status(store, name)


_GRUB_LONG = {
    "--root": "-r",
    "--device-map": "-m",
    "--memory": "-M",
    "--directory": "-d",
    "--cons-dev": "-c",
    "--evga": "-e",
    "--grub-cfg": "-g",
    "--ncons": "-n",
    "--verbose": "-v",
    "--hold": "-H",
}
_GRUB_TRY = "Try `grub-bhyve --help' or `grub-bhyve --usage' for more information."
# grub_emu_bhyve_init()'s message for each failing call, before main()'s own.
_GRUB_INIT_ERRORS = {
    "vm_create": "Could not create VM {name}",
    "vm_reinit": "Could not reinit VM {name}",
    "vm_setup_memory": "Could not setup memory for VM",
}


def _grub_file(root: str, path: str) -> str | None:
    # The daemon writes device.map and grub.cfg itself, possibly outside the sim root.
    for candidate in (st.host_path(root, path), os.path.abspath(path)):
        if os.path.exists(candidate):
            return candidate
    return None


def _grub_parse(args: list[str], out: Output) -> tuple[dict[str, str], str | None] | int:
    short: list[str] = []
    for arg in args:
        key, eq, value = arg.partition("=")
        if key in _GRUB_LONG:
            short += [_GRUB_LONG[key], value] if eq else [_GRUB_LONG[key]]
        else:
            short.append(arg)
    try:
        options, names = getopt(short, "c:d:eg:hHm:M:nr:Sv")
    except UsageError as exc:
        # gnulib argp_error(): exits with argp_err_exit_status, EX_USAGE.
        out.error(f"grub-bhyve: {exc}")
        out.error(_GRUB_TRY)
        return _EX_USAGE
    values = dict(options)
    if "M" in values and vmm.parse_memsize(values["M"]) is None:
        # main.c argp_parser(): the parser returns EINVAL, argp_parse() fails.
        out.error(f"Invalid guest memory size `{values['M']}'.")
        out.error("Error in parsing command line arguments")
        return 1
    # ARGP_KEY_ARG: every non-option argument becomes the VM name, the last one wins.
    return values, (names[-1] if names else None)


def _grub_devices(store: st.Store, values: dict[str, str], out: Output) -> bool:
    """grub_util_biosdisk_init() and the root device: grub_util_error() texts."""
    devices = {"host"}
    if "m" in values:
        device_map = _grub_file(store.root, values["m"])
        if device_map is None:
            out.error(f"grub-bhyve: error: cannot open `{values['m']}': {_ENOENT}.")
            return False
        with open(device_map) as f:
            for line in f:
                drive, _, path = line.strip().partition(")")
                if not drive.startswith("("):
                    continue
                path = path.strip()
                if not os.path.exists(st.host_path(store.root, path)):
                    out.error(f"grub-bhyve: error: cannot open `{path}': {_ENOENT}.")
                    return False
                devices.add(drive[1:])
    boot_root = values.get("r", "host")
    if boot_root.split(",")[0] not in devices:
        out.error(f"grub-bhyve: error: disk `{boot_root}' not found.")
        return False
    if boot_root == "host" and "d" in values and _grub_file(store.root, values["d"]) is None:
        out.error(f"grub-bhyve: error: file `{values['d']}/grub.cfg' not found.")
        return False
    return True


def grub_bhyve(store: st.Store, args: list[str], out: Output) -> int:
    parsed = _grub_parse(args, out)
    if isinstance(parsed, int):
        return parsed
    values, name = parsed
    if name is None:
        out.error("Required VM name parameter not supplied")
        out.error(_GRUB_TRY)
        return 1
    # main.c: grub_emu_bhyve_init() comes before the device map is read, so a bad map fails
    # with the VM already created.
    memsize = vmm.parse_memsize(values.get("M", "256")) or 256 << 20
    failed = _create_or_reinit(store, name)
    if failed is None:
        try:
            vmm.vm_setup_memory(store, name, memsize, loader=True)
        except vmm.VmmError as exc:
            failed = "vm_setup_memory", exc
    if failed is not None:
        out.error(_GRUB_INIT_ERRORS[failed[0]].format(name=name))
        out.error("Error in initializing VM")
        return 1
    if "c" in values and not console_ok(store, values["c"]):
        out.error(f"grub-bhyve: error: cannot open console device `{values['c']}'.")
        return 1
    if not _grub_devices(store, values, out):
        return 1
    return _loader_status(store, name)
