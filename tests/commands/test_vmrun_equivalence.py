"""Argv for argv, the commands a guest spec boots with equal what FreeBSD 14's vmrun.sh runs.

Each expected list was worked out by hand from share/examples/bhyve/vmrun.sh (freebsd-src
e87a5c2): `${LOADER} -c ${console} -m ${memsize} ${BOOTDISKS} ${loader_opt} ${vmname}` and
`${FBSDRUN} -c ${cpus} -m ${memsize} ${bhyverun_opt} -s 0:0,hostbridge -s 1:0,lpc ${efiargs}
${devargs} -l com1,${console} ${installer_opt} ${vmname}`, with the tool paths reduced to bare
names (the reconciler finds tools on PATH).
"""

from __future__ import annotations

import pytest

from reconciler.bhyve import boot_commands, is_bootable, needs_install
from reconciler.spec import Disk, Graphics, GuestSpec, Install, Nic, Uefi

GUEST_DIR = "/var/db/bhyve-reconciler/guests/g"
ISO = "/vm/FreeBSD-14.0-RELEASE-amd64-bootonly.iso"


def _handbook_guest(cpus: int, install: Install | None) -> GuestSpec:
    return GuestSpec(
        name="guestname",
        cpus=cpus,
        memory="1024M",
        console="/dev/nmdm0A",
        disks=(Disk(path="/vm/guest.img"),),
        nics=(Nic(tap="tap0"),),
        install=install,
    )


@pytest.mark.parametrize("disk_is_bootable", [False, True])
def test_handbook_install(disk_is_bootable: bool, blank_head: bytes, mbr_head: bytes) -> None:
    # vmrun.sh -c 1 -m 1024M -C /dev/nmdm0A -t tap0 -d /vm/guest.img -i \
    #     -I /vm/FreeBSD-14.0-RELEASE-amd64-bootonly.iso guestname
    # -i sets force_install=1, so BOOTDISKS="-d ISO" and installer_opt="-s 31:0,ahci-cd,ISO"
    # whatever the disk holds.
    guest = _handbook_guest(1, Install(iso=ISO, force=True))
    head = mbr_head if disk_is_bootable else blank_head
    install = needs_install(guest, is_bootable(head))
    commands = boot_commands(guest, taps=["tap0"], install=install, guest_dir=GUEST_DIR)

    assert commands.install is True
    assert commands.loader == (
        "bhyveload", "-c", "/dev/nmdm0A", "-m", "1024M", "-d", ISO, "guestname",
    )  # fmt: skip
    assert commands.bhyve == (
        "bhyve", "-c", "1", "-m", "1024M", "-H", "-A", "-P",
        "-s", "0:0,hostbridge", "-s", "1:0,lpc",
        "-s", "2:0,virtio-net,tap0",
        "-s", "3:0,virtio-blk,/vm/guest.img",
        "-l", "com1,/dev/nmdm0A",
        "-s", f"31:0,ahci-cd,{ISO}",
        "guestname",
    )  # fmt: skip
    assert commands.files == ()


@pytest.mark.parametrize("install", [None, Install(iso=ISO)])
def test_handbook_disk_boot(install: Install | None, mbr_head: bytes) -> None:
    # vmrun.sh -c 4 -m 1024M -C /dev/nmdm0A -t tap0 -d /vm/guest.img guestname
    # The disk has a boot sector, so need_install=0: BOOTDISKS=" -d /vm/guest.img ", no ahci-cd.
    guest = _handbook_guest(4, install)
    install_mode = needs_install(guest, is_bootable(mbr_head))
    commands = boot_commands(guest, taps=["tap0"], install=install_mode, guest_dir=GUEST_DIR)

    assert commands.install is False
    assert commands.loader == (
        "bhyveload", "-c", "/dev/nmdm0A", "-m", "1024M", "-d", "/vm/guest.img", "guestname",
    )  # fmt: skip
    assert commands.bhyve == (
        "bhyve", "-c", "4", "-m", "1024M", "-H", "-A", "-P",
        "-s", "0:0,hostbridge", "-s", "1:0,lpc",
        "-s", "2:0,virtio-net,tap0",
        "-s", "3:0,virtio-blk,/vm/guest.img",
        "-l", "com1,/dev/nmdm0A",
        "guestname",
    )  # fmt: skip


def test_blank_disk_with_iso_installs_without_force(blank_head: bytes) -> None:
    # vmrun.sh -c 2 -m 2G -C /dev/nmdm-blank.1A -t tap3 -d /vm/blank.img -I /iso/x.iso blank
    # No -i, but `file -s /vm/blank.img` finds neither a boot sector nor UFS: need_install=1.
    # console = "nmdm" (the default) resolves to /dev/nmdm-NAME.1A.
    guest = GuestSpec(
        name="blank",
        cpus=2,
        memory="2G",
        disks=(Disk(path="/vm/blank.img"),),
        nics=(Nic(tap="tap3"),),
        install=Install(iso="/iso/x.iso"),
    )
    install = needs_install(guest, is_bootable(blank_head))
    commands = boot_commands(guest, taps=["tap3"], install=install, guest_dir=GUEST_DIR)

    assert commands.install is True
    assert commands.loader == (
        "bhyveload", "-c", "/dev/nmdm-blank.1A", "-m", "2G", "-d", "/iso/x.iso", "blank",
    )  # fmt: skip
    assert commands.bhyve == (
        "bhyve", "-c", "2", "-m", "2G", "-H", "-A", "-P",
        "-s", "0:0,hostbridge", "-s", "1:0,lpc",
        "-s", "2:0,virtio-net,tap3",
        "-s", "3:0,virtio-blk,/vm/blank.img",
        "-l", "com1,/dev/nmdm-blank.1A",
        "-s", "31:0,ahci-cd,/iso/x.iso",
        "blank",
    )  # fmt: skip


def _uefi_guest(install: Install | None = None, *, vars: bool = False) -> GuestSpec:
    return GuestSpec(
        name="win",
        cpus=2,
        memory="4G",
        loader="uefi",
        disks=(Disk(path="/vm/win.img"),),
        nics=(Nic(tap="tap1"),),
        uefi=Uefi(firmware="/fw/BHYVE_UEFI.fd", vars=vars),
        graphics=Graphics(listen="0.0.0.0:5901", width=1280, height=720, wait=True, tablet=True),
        install=install,
    )


def test_uefi_with_vnc_and_tablet(mbr_head: bytes) -> None:
    # vmrun.sh -E -f /fw/BHYVE_UEFI.fd -L 0.0.0.0 -P 5901 -F w=1280,h=720 -v -T \
    #     -c 2 -m 4G -C /dev/nmdm-win.1A -t tap1 -d /vm/win.img win
    # efi_mode=1: no bhyveload; efiargs="-s 29,fbuf,tcp=0.0.0.0:5901,w=1280,h=720,wait
    # -l bootrom,/fw/BHYVE_UEFI.fd -s 30,xhci,tablet", placed right after lpc.
    guest = _uefi_guest()
    install = needs_install(guest, is_bootable(mbr_head))
    commands = boot_commands(guest, taps=["tap1"], install=install, guest_dir=GUEST_DIR)

    assert commands.loader is None
    assert commands.files == ()
    assert commands.bhyve == (
        "bhyve", "-c", "2", "-m", "4G", "-H", "-A", "-P",
        "-s", "0:0,hostbridge", "-s", "1:0,lpc",
        "-s", "29,fbuf,tcp=0.0.0.0:5901,w=1280,h=720,wait",
        "-l", "bootrom,/fw/BHYVE_UEFI.fd",
        "-s", "30,xhci,tablet",
        "-s", "2:0,virtio-net,tap1",
        "-s", "3:0,virtio-blk,/vm/win.img",
        "-l", "com1,/dev/nmdm-win.1A",
        "win",
    )  # fmt: skip


def test_uefi_install_adds_the_cd_and_still_no_loader(blank_head: bytes) -> None:
    # As above plus -I /iso/win.iso on a blank disk: installer_opt="-s 31:0,ahci-cd,/iso/win.iso";
    # BOOTDISKS only feeds bhyveload, which UEFI mode skips.
    guest = _uefi_guest(Install(iso="/iso/win.iso"))
    install = needs_install(guest, is_bootable(blank_head))
    commands = boot_commands(guest, taps=["tap1"], install=install, guest_dir=GUEST_DIR)

    assert commands.loader is None
    assert commands.bhyve == (
        "bhyve", "-c", "2", "-m", "4G", "-H", "-A", "-P",
        "-s", "0:0,hostbridge", "-s", "1:0,lpc",
        "-s", "29,fbuf,tcp=0.0.0.0:5901,w=1280,h=720,wait",
        "-l", "bootrom,/fw/BHYVE_UEFI.fd",
        "-s", "30,xhci,tablet",
        "-s", "2:0,virtio-net,tap1",
        "-s", "3:0,virtio-blk,/vm/win.img",
        "-l", "com1,/dev/nmdm-win.1A",
        "-s", "31:0,ahci-cd,/iso/win.iso",
        "win",
    )  # fmt: skip


def test_uefi_vars_file_follows_the_firmware() -> None:
    # Not a vmrun.sh option: bhyve(8) `-l bootrom,romfile[,varfile]`, as in the Handbook's
    # `-l bootrom,/usr/local/share/uefi-firmware/BHYVE_UEFI.fd,/path/to/BHYVE_UEFI_VARS.fd`.
    guest = _uefi_guest(vars=True)
    commands = boot_commands(
        guest,
        taps=["tap1"],
        install=False,
        guest_dir=GUEST_DIR,
        uefi_vars=f"{GUEST_DIR}/BHYVE_UEFI_VARS.fd",
    )
    assert "bootrom,/fw/BHYVE_UEFI.fd,/var/db/bhyve-reconciler/guests/g/BHYVE_UEFI_VARS.fd" in (
        commands.bhyve
    )
    assert "bootrom,/fw/BHYVE_UEFI.fd" not in commands.bhyve


def test_uefi_without_graphics_has_bootrom_only() -> None:
    # vmrun.sh always adds fbuf in -E mode; a spec without [graphics] asks for a headless guest,
    # so only the boot ROM stays, still right after lpc.
    guest = GuestSpec(
        name="headless",
        loader="uefi",
        console="/dev/nmdm7A",
        disks=(Disk(zvol="zroot/vm/headless"),),
    )
    commands = boot_commands(guest, taps=[], install=False, guest_dir=GUEST_DIR)
    assert commands.loader is None
    assert commands.bhyve == (
        "bhyve", "-c", "1", "-m", "512M", "-H", "-A", "-P",
        "-s", "0:0,hostbridge", "-s", "1:0,lpc",
        "-l", "bootrom,/usr/local/share/uefi-firmware/BHYVE_UEFI.fd",
        "-s", "2:0,virtio-blk,/dev/zvol/zroot/vm/headless",
        "-l", "com1,/dev/nmdm7A",
        "headless",
    )  # fmt: skip


def test_e1000_ahci_utc_msrs_loader_env_and_passthru(mbr_head: bytes) -> None:
    # vmrun.sh -c 2 -m 2G -C /dev/nmdm5A -n e1000 -t tap1 -t tap2 \
    #     -A -d /vm/a.img,nocache -d /vm/b.img -u -w -e a=b -e c=d -p 2/0/0 multi
    # bhyverun_opt="-H -A -P -u -w" then " -S" (pass_total > 0); loader_opt=" -e a=b -e c=d -S".
    # BOOTDISKS takes each disk_dev (the part before the first comma); devargs: taps from slot 2,
    # then disks with ${disk}${opts}, then passthru.
    guest = GuestSpec(
        name="multi",
        cpus=2,
        memory="2G",
        console="/dev/nmdm5A",
        utc_clock=True,
        ignore_msrs=True,
        passthru=("2/0/0",),
        loader_env=(("a", "b"), ("c", "d")),
        disks=(
            Disk(path="/vm/a.img", emulation="ahci-hd", options=("nocache",)),
            Disk(path="/vm/b.img", emulation="ahci-hd"),
        ),
        nics=(Nic(tap="tap1", emulation="e1000"), Nic(tap="tap2", emulation="e1000")),
    )
    install = needs_install(guest, is_bootable(mbr_head))
    commands = boot_commands(guest, taps=["tap1", "tap2"], install=install, guest_dir=GUEST_DIR)

    assert commands.loader == (
        "bhyveload", "-c", "/dev/nmdm5A", "-m", "2G",
        "-d", "/vm/a.img", "-d", "/vm/b.img",
        "-e", "a=b", "-e", "c=d", "-S",
        "multi",
    )  # fmt: skip
    assert commands.bhyve == (
        "bhyve", "-c", "2", "-m", "2G", "-H", "-A", "-P", "-u", "-w", "-S",
        "-s", "0:0,hostbridge", "-s", "1:0,lpc",
        "-s", "2:0,e1000,tap1",
        "-s", "3:0,e1000,tap2",
        "-s", "4:0,ahci-hd,/vm/a.img,nocache",
        "-s", "5:0,ahci-hd,/vm/b.img",
        "-s", "6:0,passthru,2/0/0",
        "-l", "com1,/dev/nmdm5A",
        "multi",
    )  # fmt: skip


def test_wire_memory_without_passthru_adds_s_to_both() -> None:
    guest = GuestSpec(name="w", console="/dev/nmdm1A", wire_memory=True, disks=(Disk(path="/d"),))
    commands = boot_commands(guest, taps=[], install=False, guest_dir=GUEST_DIR)
    assert commands.loader == (
        "bhyveload",
        "-c",
        "/dev/nmdm1A",
        "-m",
        "512M",
        "-d",
        "/d",
        "-S",
        "w",
    )
    assert commands.bhyve[:9] == ("bhyve", "-c", "1", "-m", "512M", "-H", "-A", "-P", "-S")


def test_without_wiring_neither_command_has_s() -> None:
    guest = GuestSpec(name="nw", disks=(Disk(path="/d"),))
    commands = boot_commands(guest, taps=[], install=False, guest_dir=GUEST_DIR)
    assert commands.loader is not None
    assert "-S" not in commands.loader
    assert "-S" not in commands.bhyve


def test_mac_and_allocated_tap_go_into_the_nic_backend() -> None:
    # bhyve(8) net backend `tapN[,mac=xx:xx:xx:xx:xx:xx]`; the second NIC's tap was allocated by
    # the caller (spec tap None), so the argv takes the caller's name.
    guest = GuestSpec(
        name="m",
        disks=(Disk(path="/d"),),
        nics=(Nic(tap="tap0", mac="58:9c:fc:00:00:01"), Nic()),
    )
    commands = boot_commands(guest, taps=["tap0", "tap17"], install=False, guest_dir=GUEST_DIR)
    assert "2:0,virtio-net,tap0,mac=58:9c:fc:00:00:01" in commands.bhyve
    assert "3:0,virtio-net,tap17" in commands.bhyve
    assert "4:0,virtio-blk,/d" in commands.bhyve


def test_disks_keep_their_own_emulation_and_options() -> None:
    guest = GuestSpec(
        name="d",
        disks=(
            Disk(path="/a", emulation="nvme", options=("direct", "sectorsize=4096/4096")),
            Disk(zvol="tank/d", emulation="virtio-blk", options=("ro", "nodelete")),
        ),
    )
    commands = boot_commands(guest, taps=[], install=False, guest_dir=GUEST_DIR)
    assert "2:0,nvme,/a,direct,sectorsize=4096/4096" in commands.bhyve
    assert "3:0,virtio-blk,/dev/zvol/tank/d,ro,nodelete" in commands.bhyve


def test_tap_count_must_match_nics() -> None:
    guest = GuestSpec(name="t", disks=(Disk(path="/d"),), nics=(Nic(), Nic()))
    with pytest.raises(ValueError, match="2 NICs but 1 taps"):
        boot_commands(guest, taps=["tap0"], install=False, guest_dir=GUEST_DIR)


def test_install_mode_needs_an_iso() -> None:
    guest = GuestSpec(name="t", disks=(Disk(path="/d"),))
    with pytest.raises(ValueError, match="install"):
        boot_commands(guest, taps=[], install=True, guest_dir=GUEST_DIR)


def test_uefi_vars_needs_a_vars_file() -> None:
    guest = _uefi_guest(vars=True)
    with pytest.raises(ValueError, match="vars"):
        boot_commands(guest, taps=["tap1"], install=False, guest_dir=GUEST_DIR)
