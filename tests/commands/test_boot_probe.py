"""vmrun.sh's install rule: `file -s DISK0` must say "boot sector" or "Unix Fast File sys",
else the install ISO boots; `-i` (force) boots the ISO whatever the disk holds."""

from __future__ import annotations

import pytest

from reconciler.bhyve import BOOT_PROBE_BYTES, is_bootable, needs_install
from reconciler.spec import Disk, GuestSpec, Install


def _with(offset: int, data: bytes, size: int = BOOT_PROBE_BYTES) -> bytes:
    head = bytearray(size)
    head[offset : offset + len(data)] = data
    return bytes(head)


def test_zeros_are_not_bootable(blank_head: bytes) -> None:
    assert not is_bootable(blank_head)


def test_empty_head_is_not_bootable() -> None:
    assert not is_bootable(b"")


def test_boot_signature_at_510_is_bootable(mbr_head: bytes) -> None:
    assert is_bootable(mbr_head)


def test_boot_signature_alone_in_a_512_byte_head_is_bootable() -> None:
    assert is_bootable(_with(510, b"\x55\xaa", size=512))


@pytest.mark.parametrize(
    "offset, data",
    [
        (510, b"\xaa\x55"),  # byte-swapped signature
        (511, b"\x55\xaa"),  # one byte late
        (509, b"\x55\xaa"),  # one byte early
        (8192 + 1372, (0x19540119).to_bytes(4, "little")),  # UFS2 magic at UFS1's offset
        (65536 + 1372, (0x011954).to_bytes(4, "little")),  # UFS1 magic at UFS2's offset
        (65536 + 1372, (0x19540119).to_bytes(4, "big")),  # big-endian UFS2
        (8192 + 1372, (0x011954).to_bytes(4, "big")),  # big-endian UFS1
    ],
)
def test_near_misses_are_not_bootable(offset: int, data: bytes) -> None:
    assert not is_bootable(_with(offset, data))


def test_ufs2_superblock_is_bootable() -> None:
    # FreeBSD amd64 newfs: superblock at 65536, fs_magic 0x19540119 at offset 1372, little-endian.
    assert is_bootable(_with(65536 + 1372, bytes([0x19, 0x01, 0x54, 0x19])))


def test_ufs1_superblock_is_bootable() -> None:
    assert is_bootable(_with(8192 + 1372, bytes([0x54, 0x19, 0x01, 0x00])))


def test_probe_size_reaches_the_ufs2_magic() -> None:
    head = _with(65536 + 1372, bytes([0x19, 0x01, 0x54, 0x19]))
    assert is_bootable(head[:BOOT_PROBE_BYTES])
    assert not is_bootable(head[: 65536 + 1372 + 3])


def _guest(install: Install | None) -> GuestSpec:
    return GuestSpec(name="g", disks=(Disk(path="/vm/g.img"),), install=install)


@pytest.mark.parametrize(
    "install, bootable, expected",
    [
        (None, False, False),  # nothing to install from: the disks boot (and fail visibly)
        (None, True, False),
        (Install(iso="/iso/x.iso"), False, True),  # vmrun.sh need_install
        (Install(iso="/iso/x.iso"), True, False),
        (Install(iso="/iso/x.iso", force=True), False, True),  # vmrun.sh -i
        (Install(iso="/iso/x.iso", force=True), True, True),
    ],
)
def test_needs_install(install: Install | None, bootable: bool, expected: bool) -> None:
    assert needs_install(_guest(install), bootable) is expected
