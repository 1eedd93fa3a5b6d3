"""grub-bhyve boots: the device.map and grub.cfg written to the guest's state dir, and the argv.

The Handbook's Linux guest (reference §1.3) runs `grub-bhyve -m device.map -r cd0 -M 1024M
linuxguest` to install and `-r hd0,msdos1` afterwards, with a device.map of `(hd0) ./linux.img`
and `(cd0) ./somelinux.iso`. The reconciler adds `-c CONSOLE` (grub-bhyve's --cons-dev) and
uses absolute paths in its state dir; bhyve keeps vmrun.sh's layout (install CD at slot 31).
"""

from __future__ import annotations

import pytest

from reconciler.bhyve import boot_commands, is_bootable, needs_install
from reconciler.spec import Disk, Grub, GuestSpec, Install, Nic

GUEST_DIR = "/var/db/bhyve-reconciler/guests/linuxguest"
DEVICE_MAP = f"{GUEST_DIR}/device.map"


def _linux_guest(grub: Grub | None = None, *, passthru: tuple[str, ...] = ()) -> GuestSpec:
    return GuestSpec(
        name="linuxguest",
        cpus=4,
        memory="1024M",
        loader="grub",
        disks=(Disk(path="/vm/linux.img"),),
        nics=(Nic(tap="tap0"),),
        install=Install(iso="/iso/somelinux.iso"),
        grub=grub or Grub(),
        passthru=passthru,
    )


def test_install_boots_cd0(blank_head: bytes) -> None:
    guest = _linux_guest()
    install = needs_install(guest, is_bootable(blank_head))
    commands = boot_commands(guest, taps=["tap0"], install=install, guest_dir=GUEST_DIR)

    assert commands.install is True
    assert commands.files == ((DEVICE_MAP, "(hd0) /vm/linux.img\n(cd0) /iso/somelinux.iso\n"),)
    assert commands.loader == (
        "grub-bhyve", "-c", "/dev/nmdm-linuxguest.1A", "-m", DEVICE_MAP,
        "-r", "cd0", "-M", "1024M", "linuxguest",
    )  # fmt: skip
    assert commands.bhyve == (
        "bhyve", "-c", "4", "-m", "1024M", "-H", "-A", "-P",
        "-s", "0:0,hostbridge", "-s", "1:0,lpc",
        "-s", "2:0,virtio-net,tap0",
        "-s", "3:0,virtio-blk,/vm/linux.img",
        "-l", "com1,/dev/nmdm-linuxguest.1A",
        "-s", "31:0,ahci-cd,/iso/somelinux.iso",
        "linuxguest",
    )  # fmt: skip


def test_disk_boot_uses_hd0_msdos1_and_still_maps_the_iso(mbr_head: bytes) -> None:
    guest = _linux_guest()
    install = needs_install(guest, is_bootable(mbr_head))
    commands = boot_commands(guest, taps=["tap0"], install=install, guest_dir=GUEST_DIR)

    assert commands.install is False
    assert commands.files == ((DEVICE_MAP, "(hd0) /vm/linux.img\n(cd0) /iso/somelinux.iso\n"),)
    assert commands.loader == (
        "grub-bhyve", "-c", "/dev/nmdm-linuxguest.1A", "-m", DEVICE_MAP,
        "-r", "hd0,msdos1", "-M", "1024M", "linuxguest",
    )  # fmt: skip
    assert commands.bhyve == (
        "bhyve", "-c", "4", "-m", "1024M", "-H", "-A", "-P",
        "-s", "0:0,hostbridge", "-s", "1:0,lpc",
        "-s", "2:0,virtio-net,tap0",
        "-s", "3:0,virtio-blk,/vm/linux.img",
        "-l", "com1,/dev/nmdm-linuxguest.1A",
        "linuxguest",
    )  # fmt: skip


def test_every_disk_is_mapped_in_order_and_no_cd_without_iso() -> None:
    guest = GuestSpec(
        name="two",
        loader="grub",
        console="/dev/nmdm2A",
        memory="4G",
        disks=(Disk(path="/vm/root.img"), Disk(zvol="tank/two-data")),
    )
    commands = boot_commands(guest, taps=[], install=False, guest_dir="/state/two")
    assert commands.files == (
        ("/state/two/device.map", "(hd0) /vm/root.img\n(hd1) /dev/zvol/tank/two-data\n"),
    )
    assert commands.loader == (
        "grub-bhyve", "-c", "/dev/nmdm2A", "-m", "/state/two/device.map",
        "-r", "hd0,msdos1", "-M", "4G", "two",
    )  # fmt: skip


@pytest.mark.parametrize("install", [False, True])
def test_explicit_root_wins(install: bool) -> None:
    guest = _linux_guest(Grub(root="hd0,gpt2"))
    commands = boot_commands(guest, taps=["tap0"], install=install, guest_dir=GUEST_DIR)
    assert commands.loader is not None
    assert commands.loader[5:7] == ("-r", "hd0,gpt2")


def test_grub_cfg_is_written_and_passed_with_d() -> None:
    # grub-bhyve looks for DIR/grub.cfg (-d DIR) on the root device, so the host copy is found
    # through root `host` (grub2-bhyve's default root, and what vm-bhyve uses for its own cfg).
    config = "linux (hd0,msdos1)/vmlinuz root=/dev/vda1\ninitrd (hd0,msdos1)/initrd.img\nboot"
    guest = _linux_guest(Grub(config=config))
    commands = boot_commands(guest, taps=["tap0"], install=False, guest_dir=GUEST_DIR)

    assert commands.files == (
        (DEVICE_MAP, "(hd0) /vm/linux.img\n(cd0) /iso/somelinux.iso\n"),
        (f"{GUEST_DIR}/grub.cfg", config + "\n"),
    )
    assert commands.loader == (
        "grub-bhyve", "-c", "/dev/nmdm-linuxguest.1A", "-m", DEVICE_MAP,
        "-r", "host", "-M", "1024M", "-d", GUEST_DIR, "linuxguest",
    )  # fmt: skip


def test_grub_cfg_keeps_a_single_final_newline() -> None:
    guest = _linux_guest(Grub(root="hd0,msdos1", config="boot\n"))
    commands = boot_commands(guest, taps=["tap0"], install=False, guest_dir=GUEST_DIR)
    assert commands.files[1] == (f"{GUEST_DIR}/grub.cfg", "boot\n")
    assert commands.loader is not None
    assert commands.loader[5:7] == ("-r", "hd0,msdos1")


def test_passthru_wires_grub_bhyve_memory_too() -> None:
    guest = _linux_guest(passthru=("4/0/0",))
    commands = boot_commands(guest, taps=["tap0"], install=False, guest_dir=GUEST_DIR)
    assert commands.loader == (
        "grub-bhyve", "-c", "/dev/nmdm-linuxguest.1A", "-m", DEVICE_MAP,
        "-r", "hd0,msdos1", "-M", "1024M", "-S", "linuxguest",
    )  # fmt: skip
    assert "-S" in commands.bhyve
    assert "4:0,passthru,4/0/0" in commands.bhyve
