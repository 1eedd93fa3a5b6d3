"""`bhyve-reconciler commands NAME`: the Handbook guest's next boot, as vmrun.sh would run it.

The expected lines are vmrun.sh's (reference/freebsd-bhyve.md §2) for
`vmrun.sh -c 1 -m 1024M -t tap0 -d guest.img [-i -I ISO] guestname` with a nmdm console.
"""

from __future__ import annotations

from e2e_helpers import HANDBOOK_SPEC, CliRig

INSTALL = [
    "bhyveload -c /dev/nmdm-guestname.1A -m 1024M"
    " -d /vm/iso/FreeBSD-14.0-RELEASE-amd64-bootonly.iso guestname",
    "bhyve -c 1 -m 1024M -H -A -P -s 0:0,hostbridge -s 1:0,lpc -s 2:0,virtio-net,tap0"
    " -s 3:0,virtio-blk,/vm/guestname/guest.img -l com1,/dev/nmdm-guestname.1A"
    " -s 31:0,ahci-cd,/vm/iso/FreeBSD-14.0-RELEASE-amd64-bootonly.iso guestname",
]
DISK_BOOT = [
    "bhyveload -c /dev/nmdm-guestname.1A -m 1024M -d /vm/guestname/guest.img guestname",
    "bhyve -c 1 -m 1024M -H -A -P -s 0:0,hostbridge -s 1:0,lpc -s 2:0,virtio-net,tap0"
    " -s 3:0,virtio-blk,/vm/guestname/guest.img -l com1,/dev/nmdm-guestname.1A guestname",
]


def test_handbook_guest_installs_from_iso_until_the_disk_gets_a_boot_sector(rig: CliRig) -> None:
    rig.write_spec("guestname", HANDBOOK_SPEC)
    assert rig.cli("apply").returncode == 0
    disk = rig.sim.path("/vm/guestname/guest.img")
    assert disk.stat().st_size == 16 << 30  # blank: created by apply, nothing written

    proc, ran = rig.logged("commands", "guestname")

    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == INSTALL
    assert ran == [["ifconfig", "-a"]]  # it looks, and changes nothing

    with open(disk, "r+b") as f:
        f.seek(510)
        f.write(b"\x55\xaa")

    proc = rig.cli("commands", "guestname")

    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == DISK_BOOT


def test_commands_for_an_unknown_guest_fails_naming_it(rig: CliRig) -> None:
    rig.write_spec("guestname", HANDBOOK_SPEC)

    proc, ran = rig.logged("commands", "nosuchguest")

    assert proc.returncode == 1
    assert proc.stdout == ""
    assert "'nosuchguest'" in proc.stderr
    assert ran == []
