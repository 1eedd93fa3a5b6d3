"""Disk image formats: which format a file's first and last bytes say it is, and what to do
when bhyve cannot boot it as it is.

Pure: takes the bytes the caller read (`HEAD_SIZE` from the start, `TAIL_SIZE` from the end, and
the file's size) and returns values. bhyve's block devices are raw: every other format must be
converted (`qemu-img convert -O raw`) or unpacked before it can be a guest's disk. Anything
with no known header is taken as raw, as qemu does: its raw driver probes with the lowest score,
"so that raw is used if and only if no other block driver works" (block/raw-format.c).
"""

from __future__ import annotations

import shlex
import struct
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Literal

ImageFormat = Literal[
    "raw",
    "qcow",
    "qcow2",
    "qed",
    "vmdk",
    "vhd",
    "vhdx",
    "vdi",
    "parallels",
    "bochs",
    "cloop",
    "dmg",
    "luks",
    "iso9660",
    "xz",
    "gzip",
    "bzip2",
    "zstd",
    "zip",
    "tar",
]

# The ISO 9660 primary volume descriptor starts at sector 16 (ECMA-119 §6.2.1, §8.4): its
# "CD001" identifier is at 32769, so the head must reach past it.
HEAD_SIZE = 64 * 1024
# A VHD footer is the last 512 bytes (511 for images made before Virtual PC 2004); a DMG's UDIF
# trailer ("koly") is the last 512 bytes.
TAIL_SIZE = 512
SECTOR = 512

# Formats qemu-img reads and writes as raw with `convert -O raw`.
_QEMU_IMG_FORMATS: frozenset[ImageFormat] = frozenset(
    {"qcow", "qcow2", "qed", "vmdk", "vhd", "vhdx", "vdi", "parallels", "bochs", "cloop", "dmg"}
)
_UNPACK: dict[ImageFormat, tuple[str, str]] = {
    # format: (what it is, the command that gives back the file inside)
    "xz": ("an xz-compressed file", "xz -dk {src}"),
    "gzip": ("a gzip-compressed file", "gzip -dk {src}"),
    "bzip2": ("a bzip2-compressed file", "bzip2 -dk {src}"),
    "zstd": ("a zstd-compressed file", "zstd -d {src}"),
    "zip": ("a zip archive", "unzip {src}"),
    "tar": ("a tar archive", "tar -xf {src}"),
}


@dataclass(frozen=True)
class DetectedImage:
    """What a file is, with a short human detail ("version 3", "dynamic")."""

    format: ImageFormat
    detail: str = ""

    @property
    def is_raw(self) -> bool:
        return self.format == "raw"

    def describe(self) -> str:
        name = _NAMES.get(self.format, self.format)
        return f"{name} ({self.detail})" if self.detail else name


_NAMES: dict[ImageFormat, str] = {
    "raw": "a raw disk image",
    "qcow": "a qcow (version 1) image",
    "qcow2": "a qcow2 image",
    "qed": "a QED image",
    "vmdk": "a VMDK image",
    "vhd": "a VHD image",
    "vhdx": "a VHDX image",
    "vdi": "a VirtualBox VDI image",
    "parallels": "a Parallels image",
    "bochs": "a Bochs image",
    "cloop": "a cloop image",
    "dmg": "an Apple disk image (DMG)",
    "luks": "a LUKS-encrypted volume",
    "iso9660": "an ISO 9660 (CD/DVD) image",
}


def _be32(data: bytes, offset: int) -> int:
    return int(struct.unpack_from(">I", data, offset)[0])


def _le32(data: bytes, offset: int) -> int:
    return int(struct.unpack_from("<I", data, offset)[0])


def _qcow(head: bytes) -> DetectedImage | None:
    # qemu docs/interop/qcow2.txt: magic "QFI\xfb", then a big-endian version (1, 2 or 3);
    # version 1 is the older qcow format (qemu block/qcow.c).
    if not head.startswith(b"QFI\xfb") or len(head) < 8:
        return None
    version = _be32(head, 4)
    if version == 1:
        return DetectedImage("qcow", "version 1")
    return DetectedImage("qcow2", f"version {version}")


def _vmdk(head: bytes) -> DetectedImage | None:
    # VMware Virtual Disk Format 1.1, "Hosted Sparse Extent Header": magic 0x564d444b stored
    # little-endian ("KDMV"); "COWD" starts an ESX sparse extent; a monolithic descriptor-only
    # file starts with the text "# Disk DescriptorFile" (qemu block/vmdk.c, vmdk_probe).
    if head.startswith(b"KDMV"):
        return DetectedImage("vmdk", "hosted sparse extent")
    if head.startswith(b"COWD"):
        return DetectedImage("vmdk", "ESX sparse extent")
    if head.startswith(b"# Disk DescriptorFile"):
        return DetectedImage("vmdk", "descriptor file")
    return None


_VHD_TYPES = {2: "fixed", 3: "dynamic", 4: "differencing"}


def _vhd_footer(footer: bytes) -> DetectedImage | None:
    # Microsoft "Virtual Hard Disk Image Format Specification" (2006), Hard Disk Footer Format:
    # cookie "conectix" at offset 0, disk type (big-endian) at offset 60.
    if not footer.startswith(b"conectix") or len(footer) < 64:
        return None
    kind = _VHD_TYPES.get(_be32(footer, 60), "unknown type")
    return DetectedImage("vhd", kind)


def _vhd(head: bytes, tail: bytes) -> DetectedImage | None:
    # Dynamic and differencing disks carry a copy of the footer at the start; a fixed disk has
    # it only at the end, and images made before Virtual PC 2004 have a 511-byte footer.
    found = _vhd_footer(head[:SECTOR])
    if found is not None:
        return found
    for length in (SECTOR, SECTOR - 1):
        if len(tail) >= length:
            found = _vhd_footer(tail[-length:])
            if found is not None:
                return found
    return None


def _vdi(head: bytes) -> DetectedImage | None:
    # qemu block/vdi.c: a 64-byte text pre-header ("<<< ... VirtualBox Disk Image >>>\n"), whose
    # wording varies by vendor, then the signature 0xbeda107f little-endian at offset 0x40.
    if len(head) >= 0x44 and _le32(head, 0x40) == 0xBEDA107F:
        return DetectedImage("vdi")
    return None


# (magic at offset 0, format, detail): each from the format's specification or qemu's probe.
_HEAD_MAGIC: tuple[tuple[bytes, ImageFormat, str], ...] = (
    # Microsoft [MS-VHDX] §2.2.1 File Type Identifier: signature "vhdxfile".
    (b"vhdxfile", "vhdx", ""),
    # qemu docs/interop/qed_spec.rst: magic 'Q' 'E' 'D' '\0'.
    (b"QED\x00", "qed", ""),
    # qemu docs/interop/parallels.txt: "WithoutFreeSpace", or "WithouFreSpacExt" for images
    # over 2 TiB.
    (b"WithoutFreeSpace", "parallels", ""),
    (b"WithouFreSpacExt", "parallels", "extended"),
    # qemu block/bochs.c: HEADER_MAGIC "Bochs Virtual HD Image".
    (b"Bochs Virtual HD Image", "bochs", ""),
    # qemu block/cloop.c, cloop_probe: the shell-script preamble of a V2.0 cloop file.
    (b"#!/bin/sh\n#V2.0 Format\n", "cloop", ""),
    # LUKS On-Disk Format Specification 1.2.3 §2.4 and LUKS2 §2.1: magic "LUKS\xba\xbe".
    (b"LUKS\xba\xbe", "luks", ""),
    # xz file format 1.0.4 §2.1.1.1: header magic FD 37 7A 58 5A 00.
    (b"\xfd7zXZ\x00", "xz", ""),
    # RFC 1952 §2.3.1: ID1 ID2 = 1F 8B.
    (b"\x1f\x8b", "gzip", ""),
    # RFC 8878 §3.1.1: Zstandard frame magic 0xFD2FB528, little-endian.
    (b"\x28\xb5\x2f\xfd", "zstd", ""),
    # PKWARE APPNOTE.TXT §4.3.7: local file header signature 0x04034b50 ("PK\3\4").
    (b"PK\x03\x04", "zip", ""),
)


_BZIP2_BLOCKS = (b"1AY&SY", b"\x17rE8P\x90")


def _by_magic(head: bytes) -> DetectedImage | None:
    for magic, fmt, detail in _HEAD_MAGIC:
        if head.startswith(magic):
            return DetectedImage(fmt, detail)
    # bzip2 (Seward, "bzip2 and libbzip2", file format): "BZh", a block-size digit 1-9, then
    # the block magic 0x314159265359 ("1AY&SY") or, for an empty stream, the end-of-stream
    # magic 0x177245385090.
    digit = head[3:4]
    block = head[4:10]
    if head[:3] == b"BZh" and digit and digit in b"123456789" and block in _BZIP2_BLOCKS:
        return DetectedImage("bzip2")
    return None


def _iso_or_tar(head: bytes) -> DetectedImage | None:
    # ECMA-119 §8.4: the primary volume descriptor at 32768 has type 1 then "CD001".
    if head[32769:32774] == b"CD001":
        return DetectedImage("iso9660")
    # POSIX.1-2017 pax, ustar Interchange Format: "ustar" magic at offset 257 of each header.
    if head[257:262] == b"ustar":
        return DetectedImage("tar")
    return None


def _dmg(tail: bytes) -> DetectedImage | None:
    # Apple UDIF: the 512-byte trailer at the end of the file starts with "koly"
    # (qemu block/dmg.c, dmg_find_koly_offset).
    if len(tail) >= SECTOR and tail[-SECTOR:].startswith(b"koly"):
        return DetectedImage("dmg")
    return None


def _raw(head: bytes) -> DetectedImage:
    # UEFI 2.10 §5.3.2: a GPT header "EFI PART" in LBA 1; MBR boot signature 55 AA at 510.
    if head[SECTOR : SECTOR + 8] == b"EFI PART":
        return DetectedImage("raw", "GPT")
    if head[510:512] == b"\x55\xaa":
        return DetectedImage("raw", "MBR")
    return DetectedImage("raw", "no partition table")


def detect_image(head: bytes, tail: bytes) -> DetectedImage:
    """The format of a file whose first bytes are `head` and whose last bytes are `tail`.

    Give at least `HEAD_SIZE` and `TAIL_SIZE` bytes (less only when the file is shorter).
    Formats with a header win over a trailer, as a trailer can be found by chance in raw data.
    """
    for probe in (_qcow(head), _vmdk(head), _vdi(head), _by_magic(head)):
        if probe is not None:
            return probe
    for probe in (_vhd(head, tail), _iso_or_tar(head), _dmg(tail)):
        if probe is not None:
            return probe
    return _raw(head)


def _raw_name(source: str) -> str:
    path = PurePosixPath(source)
    stem = path.stem if path.suffix else path.name
    return str(path.with_name(stem + ".raw"))


def image_problem(detected: DetectedImage, *, source: str, size: int) -> str | None:
    """Why the file at `source` cannot be copied to a guest's disk as it is, or None.

    The message says what the file is and the command that makes a raw image of it.
    """
    if size < SECTOR:
        return f"{source} has {size} bytes: too small to be a disk image"
    if detected.is_raw:
        return None
    src = shlex.quote(source)
    fmt = detected.format
    if fmt in _QEMU_IMG_FORMATS:
        dst = shlex.quote(_raw_name(source))
        return (
            f"{source} is {detected.describe()}, and bhyve boots raw images only: convert it "
            f"with `qemu-img convert -O raw {src} {dst}` and name the raw file instead"
        )
    if fmt in _UNPACK:
        what, command = _UNPACK[fmt]
        return (
            f"{source} is {what}, not a disk image: unpack it with "
            f"`{command.format(src=src)}` and name the raw disk image inside instead"
        )
    if fmt == "luks":
        return f"{source} is {detected.describe()}: bhyve cannot read it; give a raw disk image"
    return (
        f"{source} is {detected.describe()}, not a disk image: boot install media with "
        "[install] iso, or give a raw disk image"
    )
