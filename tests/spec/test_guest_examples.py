"""The guests the issue describes parse into the specs an admin means."""

from __future__ import annotations

from reconciler.guestfile import parse_guest, parse_guest_text
from reconciler.spec import (
    DEFAULT_FIRMWARE,
    Disk,
    Graphics,
    Grub,
    GuestSpec,
    Install,
    Nic,
    Uefi,
)


def parse_ok(text: str, stem: str = "guest") -> GuestSpec:
    spec, errors = parse_guest_text(text, file=f"/conf.d/{stem}.toml", stem=stem)
    assert errors == []
    assert spec is not None
    return spec


HANDBOOK_FREEBSD = """
cpus = 1
memory = "1024M"

[install]
iso = "/vm/iso/FreeBSD-14.0-RELEASE-amd64-bootonly.iso"

[[disk]]
path = "/vm/guestname/guest.img"
size = "16G"

[[nic]]
tap = "tap0"
bridge = "bridge0"
"""


def test_handbook_freebsd_guest() -> None:
    spec = parse_ok(HANDBOOK_FREEBSD, stem="guestname")
    assert spec == GuestSpec(
        name="guestname",
        source="/conf.d/guestname.toml",
        cpus=1,
        memory="1024M",
        install=Install(iso="/vm/iso/FreeBSD-14.0-RELEASE-amd64-bootonly.iso"),
        disks=(Disk(path="/vm/guestname/guest.img", size=16 << 30),),
        nics=(Nic(tap="tap0", bridge="bridge0"),),
    )


def test_grub_linux_guest() -> None:
    spec = parse_ok(
        """
name = "linuxguest"
cpus = 4
memory = "1024m"
loader = "grub"
console = "/dev/nmdm0A"

[install]
iso = "/vm/iso/somelinux.iso"

[grub]
root = "hd0,msdos1"
config = '''
linux (hd0,msdos1)/vmlinuz root=/dev/mapper/VolGroup-lv_root
initrd (hd0,msdos1)/initramfs.img
boot
'''

[[disk]]
path = "/vm/linux/linux.img"
size = "16G"

[[nic]]
tap = "tap1"
bridge = "bridge0"
""",
        stem="linux",
    )
    assert spec.name == "linuxguest"
    assert spec.loader == "grub"
    assert spec.memory == "1024M"
    assert spec.console_device == "/dev/nmdm0A"
    assert spec.grub.root == "hd0,msdos1"
    assert spec.grub.config is not None and spec.grub.config.startswith("linux (hd0,msdos1)")


def test_uefi_guest_with_vnc() -> None:
    spec = parse_ok(
        """
cpus = 2
memory = "4G"
loader = "uefi"
utc_clock = true

[uefi]
vars = true

[graphics]
listen = "0.0.0.0:5900"
width = 800
height = 600
wait = true
tablet = true

[[disk]]
path = "/vm/win/disk.img"
emulation = "nvme"
size = "64G"

[[nic]]
emulation = "e1000"
mac = "58:9C:FC:00:00:01"
""",
        stem="windows",
    )
    assert spec.uefi == Uefi(firmware=DEFAULT_FIRMWARE, vars=True)
    assert spec.graphics == Graphics(
        listen="0.0.0.0:5900", width=800, height=600, wait=True, tablet=True
    )
    assert spec.nics == (Nic(tap=None, emulation="e1000", mac="58:9c:fc:00:00:01"),)


def test_zvol_guest() -> None:
    spec = parse_ok(
        """
loader = "grub"
[[disk]]
zvol = "zroot/vm/linuxdisk0"
size = "16G"
options = ["nocache", "sectorsize=512/4096"]
""",
        stem="zvolguest",
    )
    assert spec.disks == (
        Disk(zvol="zroot/vm/linuxdisk0", size=16 << 30, options=("nocache", "sectorsize=512/4096")),
    )
    assert spec.disks[0].device == "/dev/zvol/zroot/vm/linuxdisk0"


def test_defaults_are_the_documented_ones() -> None:
    spec = parse_ok('[[disk]]\npath = "/vm/a.img"\n', stem="a")
    assert spec == GuestSpec(name="a", source="/conf.d/a.toml", disks=(Disk(path="/vm/a.img"),))
    assert spec.memory == "512M"
    assert spec.grub == Grub()


def test_every_top_level_key() -> None:
    spec = parse_ok(
        """
name = "all"
cpus = 8
memory = "2g"
state = "stopped"
console = "/dev/nmdm7A"
order = -3
restart = "always"
on_change = "next-boot"
stop_timeout = "2m"
utc_clock = true
ignore_msrs = true
wire_memory = false
passthru = ["2/0/0", "03/00/1"]

[loader_env]
autoboot_delay = "3"
"hw.physmem" = "1G"

[[disk]]
path = "/vm/all/a.img"
emulation = "ahci-hd"
[[disk]]
path = "/vm/all/b.img"
emulation = "ahci-hd"
options = ["nocache"]

[[nic]]
tap = "tap10"
emulation = "e1000"
[[nic]]
tap = "tap11"
emulation = "e1000"
""",
        stem="ignored",
    )
    assert (spec.name, spec.cpus, spec.memory, spec.lifecycle.state) == ("all", 8, "2G", "stopped")
    life = spec.lifecycle
    assert (life.order, life.restart, life.on_change) == (-3, "always", "next-boot")
    assert life.stop_timeout == 120.0
    assert spec.utc_clock and spec.ignore_msrs and not spec.wire_memory
    assert spec.passthru == ("2/0/0", "3/0/1")
    assert spec.wired
    assert spec.loader_env == (("autoboot_delay", "3"), ("hw.physmem", "1G"))
    assert [d.options for d in spec.disks] == [(), ("nocache",)]
    assert [n.tap for n in spec.nics] == ["tap10", "tap11"]


def test_numeric_stop_timeout_is_seconds() -> None:
    spec = parse_ok('stop_timeout = 45\n[[disk]]\npath = "/vm/a.img"\n')
    assert spec.lifecycle.stop_timeout == 45.0


def test_parse_guest_takes_already_parsed_tables() -> None:
    spec, errors = parse_guest({"disk": [{"path": "/vm/x.img"}]}, file="x.toml", stem="x")
    assert errors == []
    assert spec is not None and spec.disks[0].path == "/vm/x.img"


def test_install_force() -> None:
    spec = parse_ok('[install]\niso = "/i.iso"\nforce = true\n[[disk]]\npath = "/vm/a.img"\n')
    assert spec.install == Install(iso="/i.iso", force=True)
