"""Exact command lines for one boot of a guest: the loader (bhyveload or grub-bhyve, none for
UEFI), the files the loader reads, and bhyve itself, laid out as FreeBSD 14's vmrun.sh does (or,
with `layout = "vm-bhyve"`, as `bhyve_layout` lays them out), plus vmrun.sh's rule for when the
install media boots.

Pure: it turns a `GuestSpec` and facts the caller already gathered (tap names, the first disk's
leading bytes, the guest's state directory) into argv tuples and file contents. It never runs,
reads or writes anything itself.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from dataclasses import dataclass

from reconciler import bhyve_layout
from reconciler.errors import SpecError
from reconciler.spec import GuestSpec

HOSTBRIDGE_SLOT = 0
LPC_SLOT = 1
FIRST_DEVICE_SLOT = 2  # vmrun.sh: "slot 0 is hostbridge, slot 1 is lpc"
FBUF_SLOT = 29
TABLET_SLOT = 30
INSTALL_CD_SLOT = 31
LAST_DEVICE_SLOT = FBUF_SLOT - 1
# The cloud-init seed CD: the last device slot. 29-31 are vmrun.sh's fbuf, xhci tablet and
# install media, any of which a cloud-init guest may use too (a UEFI image with a framebuffer,
# an [install] ISO); NICs, disks and passthru count up from 2, so 28 is the one slot they reach
# last, and keeping the seed there leaves every other device where vmrun.sh puts it, whether
# the guest has a seed or not (validation keeps the devices below it).
SEED_CD_SLOT = LAST_DEVICE_SLOT

DEVICE_MAP = "device.map"
GRUB_CFG = "grub.cfg"

_MBR_SIGNATURE_OFFSET = 510
_MBR_SIGNATURE = b"\x55\xaa"
# file(1)'s magic: the UFS magic number sits 1372 bytes into the superblock, which starts at
# 8192 (UFS1) or 65536 (UFS2); FreeBSD amd64 writes it little-endian.
_UFS1_MAGIC_OFFSET = 8192 + 1372
_UFS1_MAGIC = (0x011954).to_bytes(4, "little")
_UFS2_MAGIC_OFFSET = 65536 + 1372
_UFS2_MAGIC = (0x19540119).to_bytes(4, "little")

BOOT_PROBE_BYTES = _UFS2_MAGIC_OFFSET + len(_UFS2_MAGIC)


def is_bootable(head: bytes) -> bool:
    """vmrun.sh's test on the first disk: `file -s` says "boot sector" or "Unix Fast File sys".

    `head` is the disk's first bytes (up to `BOOT_PROBE_BYTES`); a shorter head, such as a
    freshly truncated small image, simply lacks the signatures it does not reach.
    """

    def has(offset: int, magic: bytes) -> bool:
        return head[offset : offset + len(magic)] == magic

    return (
        has(_MBR_SIGNATURE_OFFSET, _MBR_SIGNATURE)
        or has(_UFS1_MAGIC_OFFSET, _UFS1_MAGIC)
        or has(_UFS2_MAGIC_OFFSET, _UFS2_MAGIC)
    )


def needs_install(guest: GuestSpec, first_disk_bootable: bool) -> bool:
    """vmrun.sh's install rule: boot the ISO when forced (`-i`) or when the disk cannot boot."""
    if guest.install is None:
        return False
    return guest.install.force or not first_disk_bootable


@dataclass(frozen=True)
class BootCommands:
    """Everything one boot runs, in order: write `files`, run `loader` (if any), run `bhyve`."""

    loader: tuple[str, ...] | None
    bhyve: tuple[str, ...]
    files: tuple[tuple[str, str], ...]  # (path, content), written before the loader runs
    install: bool


@dataclass(frozen=True)
class _DeviceSlots:
    nics: tuple[int, ...]
    disks: tuple[int, ...]
    passthru: tuple[int, ...]


def _device_slots(guest: GuestSpec) -> _DeviceSlots:
    # vmrun.sh 14.x numbers taps, then disks, then passthru devices consecutively from slot 2;
    # keeping that order is what lets a vmrun.sh-installed guest find its disks unchanged.
    counts = (len(guest.nics), len(guest.disks), len(guest.passthru))
    last = FIRST_DEVICE_SLOT + sum(counts) - 1
    top = LAST_DEVICE_SLOT if guest.cloud_init is None else SEED_CD_SLOT - 1
    if last > top:
        free = top - FIRST_DEVICE_SLOT + 1
        kept = "29-31 are kept for fbuf, xhci, install cd"
        if guest.cloud_init is not None:
            kept = f"{SEED_CD_SLOT} is the cloud-init seed's, {kept}"
        raise SpecError(
            guest.source or guest.name,
            "disk",
            f"{sum(counts)} NICs, disks and passthru devices do not fit the {free} PCI slots "
            f"{FIRST_DEVICE_SLOT}-{top} ({kept})",
        )
    groups: list[tuple[int, ...]] = []
    start = FIRST_DEVICE_SLOT
    for count in counts:
        groups.append(tuple(range(start, start + count)))
        start += count
    return _DeviceSlots(nics=groups[0], disks=groups[1], passthru=groups[2])


def pci_slots(guest: GuestSpec, *, install: bool = False) -> list[tuple[int, str]]:
    """The guest's PCI layout, sorted by slot: `(slot, what)` with `what` one of `hostbridge`,
    `lpc`, `nicN`, `diskN`, `passthruN`, `seed-cd`, `fbuf`, `xhci-tablet`, `install-cd`.

    Raises `SpecError` when the NICs, disks and passthru devices do not fit slots 2-28.
    """
    devices = _device_slots(guest)
    layout = [(HOSTBRIDGE_SLOT, "hostbridge"), (LPC_SLOT, "lpc")]
    layout += [(slot, f"nic{i}") for i, slot in enumerate(devices.nics)]
    layout += [(slot, f"disk{i}") for i, slot in enumerate(devices.disks)]
    layout += [(slot, f"passthru{i}") for i, slot in enumerate(devices.passthru)]
    if guest.cloud_init is not None:
        layout.append((SEED_CD_SLOT, "seed-cd"))
    if guest.loader == "uefi" and guest.graphics is not None:
        layout.append((FBUF_SLOT, "fbuf"))
        if guest.graphics.tablet:
            layout.append((TABLET_SLOT, "xhci-tablet"))
    if install:
        layout.append((INSTALL_CD_SLOT, "install-cd"))
    return sorted(layout)


def boot_commands(
    guest: GuestSpec,
    *,
    taps: Sequence[str],
    install: bool,
    guest_dir: str,
    uefi_vars: str | None = None,
    seed: str | None = None,
) -> BootCommands:
    """The loader and bhyve argv (argv[0] a bare tool name, found on PATH) for the next boot.

    `taps` names the tap of each NIC, in `guest.nics` order. `install` is `needs_install(...)`'s
    answer. `guest_dir` is the guest's state directory, where grub's device.map and grub.cfg go.
    `uefi_vars` is the per-guest vars file, required when `guest.uefi.vars` is set; `seed`
    the cloud-init seed image, required when `guest.cloud_init` is set.
    Raises `ValueError` when the caller's facts do not fit the spec, and `SpecError` when the
    devices do not fit bhyve's PCI slots.
    """
    if len(taps) != len(guest.nics):
        raise ValueError(f"{guest.name}: {len(guest.nics)} NICs but {len(taps)} taps given")
    if install and guest.install is None:
        raise ValueError(f"{guest.name}: install mode without an [install] iso")
    if guest.loader == "uefi" and guest.uefi.vars and uefi_vars is None:
        raise ValueError(f"{guest.name}: [uefi] vars is set but no vars file was given")
    if (guest.cloud_init is None) != (seed is None):
        raise ValueError(f"{guest.name}: a seed image goes with [cloud_init], and only with it")

    if guest.layout == "vm-bhyve":
        laid_out = bhyve_layout.vm_bhyve_commands(
            guest, taps=taps, install=install, guest_dir=guest_dir, uefi_vars=uefi_vars
        )
        return BootCommands(*laid_out, install=install)
    files: tuple[tuple[str, str], ...] = ()
    loader: tuple[str, ...] | None
    if guest.loader == "bhyveload":
        loader = _bhyveload_argv(guest, install=install)
    elif guest.loader == "grub":
        loader, files = _grub_bhyve(guest, install=install, guest_dir=guest_dir)
    else:
        loader = None
    bhyve = _bhyve_argv(guest, taps=taps, install=install, uefi_vars=uefi_vars, seed=seed)
    return BootCommands(loader=loader, bhyve=bhyve, files=files, install=install)


def _install_iso(guest: GuestSpec) -> str:
    assert guest.install is not None
    return guest.install.iso


def _bhyveload_argv(guest: GuestSpec, *, install: bool) -> tuple[str, ...]:
    argv = ["bhyveload", "-c", guest.console_device, "-m", guest.memory]
    # vmrun.sh's BOOTDISKS: the ISO alone while installing, else every disk.
    boot_devices = [_install_iso(guest)] if install else [disk.device for disk in guest.disks]
    for device in boot_devices:
        argv += ["-d", device]
    for key, value in guest.loader_env:
        argv += ["-e", f"{key}={value}"]
    if guest.wired:
        argv.append("-S")
    argv.append(guest.name)
    return tuple(argv)


def device_map(guest: GuestSpec) -> str:
    """grub-bhyve's device.map: `(hdN) DEVICE` per disk, then `(cd0) ISO` when one is set.

    The ISO is listed even when the disks boot, so the media stays reachable from grub's prompt.
    """
    lines = [f"(hd{i}) {disk.device}" for i, disk in enumerate(guest.disks)]
    if guest.install is not None:
        lines.append(f"(cd0) {guest.install.iso}")
    return "".join(f"{line}\n" for line in lines)


def grub_root(guest: GuestSpec, *, install: bool) -> str:
    """grub-bhyve's `-r`: the spec's root, else where the boot files are.

    With a `[grub] config` the root defaults to `host`: grub-bhyve looks for `DIR/grub.cfg` on
    the root device, so only the host filesystem holds the file we write.
    """
    if guest.grub.root is not None:
        return guest.grub.root
    if guest.grub.config is not None:
        return "host"
    return "cd0" if install else "hd0,msdos1"


def _grub_bhyve(
    guest: GuestSpec, *, install: bool, guest_dir: str
) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    map_path = posixpath.join(guest_dir, DEVICE_MAP)
    files = [(map_path, device_map(guest))]
    argv = [
        "grub-bhyve",
        "-c",
        guest.console_device,
        "-m",
        map_path,
        "-r",
        grub_root(guest, install=install),
        "-M",
        guest.memory,
    ]
    if guest.wired:
        argv.append("-S")
    if guest.grub.config is not None:
        config = guest.grub.config
        if not config.endswith("\n"):
            config += "\n"
        files.append((posixpath.join(guest_dir, GRUB_CFG), config))
        argv += ["-d", guest_dir]
    argv.append(guest.name)
    return tuple(argv), tuple(files)


def _efi_args(guest: GuestSpec, *, install: bool, uefi_vars: str | None) -> list[str]:
    """vmrun.sh's efiargs: framebuffer, boot ROM, tablet, before the numbered devices."""
    argv: list[str] = []
    graphics = guest.graphics
    if graphics is not None:
        fbuf = f"{FBUF_SLOT},fbuf,tcp={graphics.listen},w={graphics.width},h={graphics.height}"
        if graphics.wait or (install and graphics.wait_install):
            fbuf += ",wait"
        argv += ["-s", fbuf]
    bootrom = f"bootrom,{guest.uefi.firmware}"
    if guest.uefi.vars:
        bootrom += f",{uefi_vars}"
    argv += ["-l", bootrom]
    if graphics is not None and graphics.tablet:
        argv += ["-s", f"{TABLET_SLOT},xhci,tablet"]
    return argv


def _bhyve_argv(
    guest: GuestSpec,
    *,
    taps: Sequence[str],
    install: bool,
    uefi_vars: str | None,
    seed: str | None = None,
) -> tuple[str, ...]:
    argv = ["bhyve", "-c", guest.cpu_argument, "-m", guest.memory, "-H", "-A", "-P"]
    if guest.uuid is not None:
        argv += ["-U", guest.uuid]
    if guest.utc_clock:
        argv.append("-u")
    if guest.ignore_msrs:
        argv.append("-w")
    if guest.wired:
        argv.append("-S")
    argv += ["-s", f"{HOSTBRIDGE_SLOT}:0,hostbridge", "-s", f"{LPC_SLOT}:0,lpc"]

    if guest.loader == "uefi":
        argv += _efi_args(guest, install=install, uefi_vars=uefi_vars)

    slots = _device_slots(guest)
    for slot, nic, tap in zip(slots.nics, guest.nics, taps, strict=True):
        backend = tap if nic.mac is None else f"{tap},mac={nic.mac}"
        argv += ["-s", f"{slot}:0,{nic.emulation},{backend}"]
    for slot, disk in zip(slots.disks, guest.disks, strict=True):
        argv += ["-s", ",".join([f"{slot}:0", disk.emulation, disk.device, *disk.options])]
    for slot, bsf in zip(slots.passthru, guest.passthru, strict=True):
        argv += ["-s", f"{slot}:0,passthru,{bsf}"]
    if seed is not None:
        argv += ["-s", f"{SEED_CD_SLOT}:0,ahci-cd,{seed}"]

    argv += ["-l", f"com1,{guest.console_device}"]
    if install:
        argv += ["-s", f"{INSTALL_CD_SLOT}:0,ahci-cd,{_install_iso(guest)}"]
    argv.append(guest.name)
    return tuple(argv)
