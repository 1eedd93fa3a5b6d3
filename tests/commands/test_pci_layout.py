"""vmrun.sh's PCI layout: 0 hostbridge, 1 lpc, NICs from 2, then disks, then passthru; 29 fbuf,
30 xhci tablet, 31 the install CD. A guest installed by vmrun.sh finds its disks where they were."""

from __future__ import annotations

import pytest

from reconciler.bhyve import pci_slots
from reconciler.errors import SpecError
from reconciler.spec import Disk, Graphics, GuestSpec, Install, Nic


def test_layout_of_nics_disks_and_passthru() -> None:
    guest = GuestSpec(
        name="g",
        nics=(Nic(), Nic()),
        disks=(Disk(path="/a"), Disk(path="/b"), Disk(path="/c")),
        passthru=("1/0/0", "2/0/0"),
    )
    assert pci_slots(guest) == [
        (0, "hostbridge"),
        (1, "lpc"),
        (2, "nic0"),
        (3, "nic1"),
        (4, "disk0"),
        (5, "disk1"),
        (6, "disk2"),
        (7, "passthru0"),
        (8, "passthru1"),
    ]


def test_disks_start_at_2_without_nics() -> None:
    guest = GuestSpec(name="g", disks=(Disk(path="/a"),))
    assert pci_slots(guest) == [(0, "hostbridge"), (1, "lpc"), (2, "disk0")]


def test_uefi_graphics_tablet_and_install_cd_take_29_to_31() -> None:
    guest = GuestSpec(
        name="g",
        loader="uefi",
        graphics=Graphics(tablet=True),
        install=Install(iso="/i.iso"),
        disks=(Disk(path="/a"),),
    )
    assert pci_slots(guest, install=True) == [
        (0, "hostbridge"),
        (1, "lpc"),
        (2, "disk0"),
        (29, "fbuf"),
        (30, "xhci-tablet"),
        (31, "install-cd"),
    ]
    assert (31, "install-cd") not in pci_slots(guest, install=False)


def test_graphics_without_tablet_has_no_xhci() -> None:
    guest = GuestSpec(name="g", loader="uefi", graphics=Graphics(), disks=(Disk(path="/a"),))
    assert [what for _, what in pci_slots(guest)] == ["hostbridge", "lpc", "disk0", "fbuf"]


def test_27_devices_fit_and_28_do_not() -> None:
    # Slots 2..28 are free for numbered devices; 29-31 belong to fbuf, xhci and the install CD.
    fits = GuestSpec(
        name="g",
        source="/conf.d/g.toml",
        nics=tuple(Nic() for _ in range(8)),
        disks=tuple(Disk(path=f"/d{i}") for i in range(19)),
    )
    assert pci_slots(fits)[-1] == (28, "disk18")
    too_many = GuestSpec(
        name="g",
        source="/conf.d/g.toml",
        nics=fits.nics,
        disks=fits.disks,
        passthru=("3/0/0",),
    )
    with pytest.raises(SpecError) as error:
        pci_slots(too_many)
    assert error.value.file == "/conf.d/g.toml"
