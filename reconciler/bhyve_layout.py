"""The command lines of a guest with `layout = "vm-bhyve"`: the loader's and bhyve's argv laid
out as vm-bhyve's `vm _run` lays them out, so a guest vm-bhyve installed finds every device in
the PCI slot, bus and function it had (Linux names its NICs by slot, Windows keys device
identities on them), and its loader gets the arguments it always got.

Pure, like `bhyve`, which dispatches here: a `GuestSpec` and the facts the caller gathered in,
argv tuples and the loader's files out. Written from lib/vm-run and lib/vm-guest at
freebsd/vm-bhyve 89c21d0 (the function names below are theirs). It never imports
`reconciler.vmbhyve`: that is an independent model of the same shell code, and the tests hold
the two against each other.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from reconciler.errors import SpecError
from reconciler.spec import GuestSpec

HOSTBRIDGE = "-s 0,hostbridge"  # vm::bhyve_device_basic: slot 0 and 31 without a bus
LPC = "-s 31,lpc"
# vm-run's `_maxslots=31`: bus 0 ends before lpc's slot 31; a device that would land on it
# moves to slot 0 of the next bus, where all 32 slots are free.
_BUS0_SLOTS = 31
_SLOTS = 32
_FUNCTIONS = 8  # functions 0-7 of one slot
# pci_fbuf.c COLS_DEFAULT/ROWS_DEFAULT: vm-bhyve gives w= and h= only with graphics_res.
_FBUF_DEFAULT = (1024, 768)
# vm::run's `echo ISO | grep -iqs '.iso$'`: a regular expression, so `.` is any character.
_ISO_NAME_RE = re.compile(r".iso\Z", re.IGNORECASE)
DEVICE_MAP = "device.map"
GRUB_CFG = "grub.cfg"
DEFAULT_GRUB_ROOT = "hd0,1"  # guest::load's `_root` for a normal run


@dataclass
class _Cursor:
    """vm-run's `_bus`, `_slot`, `_func` and `_maxslots`, moved as its functions move them."""

    slot: int
    bus: int = 0
    func: int = 0
    last: int = _BUS0_SLOTS
    devices: list[str] = field(default_factory=list)

    def wrap(self) -> None:
        """The `if [ ${_slot} -ge ${_maxslots} ]` test each device function repeats."""
        if self.slot >= self.last:
            self.slot, self.bus, self.last = 0, self.bus + 1, _SLOTS

    def full_slot(self) -> None:
        """`if [ ${_func} -ge 8 ]`: functions 0-7 used, on to the next slot."""
        if self.func >= _FUNCTIONS:
            self.func, self.slot = 0, self.slot + 1

    def add(self, device: str) -> None:
        self.devices += ["-s", device]

    def here(self, func: int | None = None) -> str:
        return f"{self.bus}:{self.slot}:{self.func if func is None else func}"


def _disks(guest: GuestSpec, cur: _Cursor, uefi: bool) -> None:
    """vm::bhyve_device_disks: from start_slot; without UEFI the disks are functions of one
    slot, with UEFI each added device takes the next slot. With ahci_device_limit above 1,
    ahci disks wait to share one controller until it holds that many."""
    limit = guest.vm_bhyve.ahci_device_limit
    shared, waiting = "", 0
    for disk in guest.disks:
        opts = "".join(f",{o}" for o in disk.options)
        cur.full_slot()
        cur.wrap()
        added = False
        if limit > 1 and disk.emulation.startswith("ahci"):
            shared += f",{disk.emulation[-2:]}:{disk.device}{opts}"  # hd: or cd:
            waiting += 1
            if waiting >= limit:
                cur.add(f"{cur.here()},ahci{shared}")
                shared, waiting, added = "", 0, True
        else:
            cur.add(f"{cur.here()},{disk.emulation},{disk.device}{opts}")
            added = True
        if added and uefi:
            cur.slot += 1
        elif added:
            cur.func += 1
        cur.wrap()
    if shared:
        # The last, partly filled controller is written `slot:func` with no bus (vm-run's
        # own spelling, which bhyve reads as bus 0).
        cur.add(f"{cur.slot}:{cur.func},ahci{shared}")
        if uefi:
            cur.slot += 1
    if guest.disks and not uefi:
        cur.slot, cur.func = cur.slot + 1, 0
    cur.wrap()


def _nics(guest: GuestSpec, cur: _Cursor, taps: Sequence[str]) -> None:
    """vm::bhyve_device_networking and switch::standard::provision: the NICs are functions
    of one slot, then the next slot."""
    for nic, tap in zip(guest.nics, taps, strict=True):
        cur.full_slot()
        cur.wrap()
        mac = f",mac={nic.mac}" if nic.mac is not None else ""
        cur.add(f"{cur.here()},{nic.emulation},{tap}{mac}")
        cur.func += 1
    if guest.nics:
        cur.slot, cur.func = cur.slot + 1, 0
    cur.wrap()


def _passthru(guest: GuestSpec, cur: _Cursor) -> None:
    """vm::bhyve_device_passthru: functions of one host slot share one guest slot (its own
    function counter); a device from another host slot moves to the next guest slot."""
    func, last = 0, None
    for device in guest.passthru:
        host_slot = device.split("/", 1)[0]
        if last is not None and last != host_slot:
            cur.slot, func = cur.slot + 1, 0
        cur.wrap()
        cur.add(f"{cur.here(func)},passthru,{device}")
        last, func = host_slot, func + 1
    if guest.passthru:
        cur.slot += 1
    cur.wrap()


def _framebuffer(guest: GuestSpec, cur: _Cursor, install: bool) -> None:
    """vm::bhyve_device_fbuf and vm::bhyve_device_mouse: UEFI guests only here, since the
    tablet belongs to `[graphics]`."""
    graphics = guest.graphics
    if guest.loader != "uefi" or graphics is None:
        return
    fbuf = f"tcp={graphics.listen}"
    if (graphics.width, graphics.height) != _FBUF_DEFAULT:
        fbuf += f",w={graphics.width},h={graphics.height}"
    if graphics.wait or (install and graphics.wait_install):
        fbuf += ",wait"
    cur.add(f"{cur.here(0)},fbuf,{fbuf}")
    cur.slot += 1
    cur.wrap()
    if graphics.tablet:
        cur.add(f"{cur.here(0)},xhci,tablet")
        cur.slot += 1
        cur.wrap()


def _options(guest: GuestSpec, cur: _Cursor, uefi_vars: str | None) -> list[str]:
    """vm::run's `_opts`, in its order (devices come before them on the command line)."""
    opts = [
        "-c",
        guest.cpu_argument,
        "-m",
        guest.memory,
        "-AHP" + ("w" if guest.ignore_msrs else ""),
    ]
    if guest.loader == "uefi":
        bootrom = f"bootrom,{guest.uefi.firmware}"  # vm::uefi
        if uefi_vars is not None:
            bootrom += f",{uefi_vars}"
        opts += ["-l", bootrom]
    if guest.wire_memory:
        opts.append("-S")
    if guest.uuid is not None:
        opts += ["-U", guest.uuid]
    if guest.utc_clock:
        opts.append("-u")
    if guest.passthru:
        opts.append("-S")  # vm::bhyve_device_passthru adds its own
    if cur.bus >= 1:
        opts.append("-Y")  # more than one PCI bus: no MP table
    return opts


def _install_media(guest: GuestSpec, cur: _Cursor) -> list[str]:
    """vm::run's `_iso_dev` while installing, at install_slot, function 0, no bus."""
    assert guest.install is not None
    iso, slot = guest.install.iso, guest.vm_bhyve.install_slot
    taken = {f"0:{slot}:", f"{slot}:"}
    if any(d.startswith(tuple(taken)) for d in cur.devices[1::2]):
        raise SpecError(
            guest.source or guest.name,
            "vm_bhyve.install_slot",
            f"slot {slot} already holds a device: the install media needs another slot",
        )
    if _ISO_NAME_RE.search(iso):
        return ["-s", f"{slot}:0,ahci-cd,{iso},ro,bootindex=1"]
    return ["-s", f"{slot}:0,ahci-hd,{iso},ro"]


def _bhyve(
    guest: GuestSpec, *, taps: Sequence[str], install: bool, uefi_vars: str | None
) -> tuple[str, ...]:
    """`bhyve ${_devices} ${_opts} ${_iso_dev} ${_comstring} NAME`, as vm::run runs it."""
    uefi = guest.loader == "uefi"
    cur = _Cursor(slot=guest.vm_bhyve.start_slot)
    cur.devices = HOSTBRIDGE.split(" ") + LPC.split(" ")
    _disks(guest, cur, uefi)
    _nics(guest, cur, taps)
    _passthru(guest, cur)
    _framebuffer(guest, cur, install)
    argv = ["bhyve", *cur.devices, *_options(guest, cur, uefi_vars)]
    if install:
        argv += _install_media(guest, cur)
    return (*argv, "-l", f"com1,{guest.console_device}", guest.name)


def _bhyveload(guest: GuestSpec, install: bool) -> tuple[str, ...]:
    """guest::load for bhyveload: the console, -S, memory, every -e in order, then the ISO
    while installing or the first disk."""
    argv = ["bhyveload", "-c", guest.console_device, *(["-S"] if guest.wired else [])]
    argv += ["-m", guest.memory]
    for name, value in guest.loader_env:
        argv += ["-e", f"{name}={value}"]
    boot = guest.install.iso if install and guest.install is not None else guest.disks[0].device
    return (*argv, "-d", boot, guest.name)


def _grub(
    guest: GuestSpec, install: bool, guest_dir: str
) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """guest::load for grub-bhyve: device.map with every disk (and cd0 first while
    installing); grub commands written to grub.cfg are read from the host (`-r host -d`)."""
    map_path = posixpath.join(guest_dir, DEVICE_MAP)
    argv = ["grub-bhyve", "-c", guest.console_device, *(["-S"] if guest.wired else [])]
    argv += ["-m", map_path, "-M", guest.memory]
    disks = "".join(f"(hd{i}) {disk.device}\n" for i, disk in enumerate(guest.disks))
    if install and guest.install is not None:
        files = [(map_path, f"(cd0) {guest.install.iso}\n{disks}")]
        return (*argv, "-r", "cd0", guest.name), tuple(files)
    files = [(map_path, disks)]
    config = guest.grub.config
    if config is not None:
        files.append(
            (
                posixpath.join(guest_dir, GRUB_CFG),
                config if config.endswith("\n") else config + "\n",
            )
        )
        return (*argv, "-r", "host", "-d", guest_dir, guest.name), tuple(files)
    argv += ["-r", guest.grub.root or DEFAULT_GRUB_ROOT]
    settings = guest.vm_bhyve
    if settings.grub_run_dir is not None:
        argv += ["-d", settings.grub_run_dir]
    if settings.grub_run_file is not None:
        argv += ["-g", settings.grub_run_file]
    return (*argv, guest.name), tuple(files)


def vm_bhyve_commands(
    guest: GuestSpec,
    *,
    taps: Sequence[str],
    install: bool,
    guest_dir: str,
    uefi_vars: str | None,
) -> tuple[tuple[str, ...] | None, tuple[str, ...], tuple[tuple[str, str], ...]]:
    """(loader argv or None for UEFI, bhyve argv, files to write before the loader), with the
    arguments `bhyve.boot_commands` checked. Raises `SpecError` when the install media's
    slot holds a device."""
    bhyve = _bhyve(guest, taps=taps, install=install, uefi_vars=uefi_vars)
    if guest.loader == "bhyveload":
        return _bhyveload(guest, install), bhyve, ()
    if guest.loader == "grub":
        loader, files = _grub(guest, install, guest_dir)
        return loader, bhyve, files
    return None, bhyve, ()
