"""Disk image formats told apart by their headers (built here from each format's spec), and the
message that says how to make a raw image of anything else."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from reconciler.host.sparse import read_probe
from reconciler.images import (
    HEAD_SIZE,
    TAIL_SIZE,
    DetectedImage,
    ImageFormat,
    detect_image,
    image_problem,
)

MiB = 1 << 20


def padded(prefix: bytes, size: int = HEAD_SIZE) -> bytes:
    return prefix + bytes(size - len(prefix))


def at(offset: int, data: bytes, size: int = HEAD_SIZE) -> bytes:
    out = bytearray(size)
    out[offset : offset + len(data)] = data
    return bytes(out)


def vhd_footer(disk_type: int) -> bytes:
    # Hard Disk Footer: cookie, features, version, data offset, timestamp, creator app/version/OS,
    # sizes, geometry, then the disk type at offset 60.
    footer = bytearray(512)
    footer[0:8] = b"conectix"
    footer[60:64] = struct.pack(">I", disk_type)
    return bytes(footer)


MBR = at(510, b"\x55\xaa")
# ECMA-119 §8.4: the primary volume descriptor in sector 16: type 1, "CD001", version 1.
HYBRID_ISO = MBR[:32768] + at(0, b"\x01CD001\x01", HEAD_SIZE - 32768)
NO_TAIL = bytes(TAIL_SIZE)

CASES: list[tuple[str, bytes, bytes, ImageFormat, str]] = [
    # (id, head, tail, format, detail)
    ("raw-mbr", MBR, NO_TAIL, "raw", "MBR"),
    ("raw-gpt", at(512, b"EFI PART") , NO_TAIL, "raw", "GPT"),
    ("raw-blank", bytes(HEAD_SIZE), NO_TAIL, "raw", "no partition table"),
    ("qcow2-v3", padded(b"QFI\xfb\x00\x00\x00\x03"), NO_TAIL, "qcow2", "version 3"),
    ("qcow2-v2", padded(b"QFI\xfb\x00\x00\x00\x02"), NO_TAIL, "qcow2", "version 2"),
    ("qcow-v1", padded(b"QFI\xfb\x00\x00\x00\x01"), NO_TAIL, "qcow", "version 1"),
    ("vmdk-sparse", padded(b"KDMV\x01\x00\x00\x00"), NO_TAIL, "vmdk", "hosted sparse extent"),
    ("vmdk-esx", padded(b"COWD\x01\x00\x00\x00"), NO_TAIL, "vmdk", "ESX sparse extent"),
    ("vmdk-descriptor", padded(b"# Disk DescriptorFile\nversion=1\n"), NO_TAIL, "vmdk",
     "descriptor file"),
    ("vhd-dynamic", padded(vhd_footer(3)), vhd_footer(3), "vhd", "dynamic"),
    ("vhd-differencing", padded(vhd_footer(4)), vhd_footer(4), "vhd", "differencing"),
    # A fixed VHD is raw data (here with a boot sector) and the footer at the very end.
    ("vhd-fixed", MBR, vhd_footer(2), "vhd", "fixed"),
    ("vhd-fixed-511", MBR, b"\x00" + vhd_footer(2)[:511], "vhd", "fixed"),
    ("vhdx", padded(b"vhdxfile" + "Microsoft Windows".encode("utf-16-le")), NO_TAIL, "vhdx", ""),
    ("vdi", padded(b"<<< Oracle VM VirtualBox Disk Image >>>\n".ljust(64, b"\0")
                   + struct.pack("<I", 0xBEDA107F)), NO_TAIL, "vdi", ""),
    ("vdi-other-text", at(0x40, struct.pack("<I", 0xBEDA107F)), NO_TAIL, "vdi", ""),
    ("qed", padded(b"QED\x00" + struct.pack("<I", 65536)), NO_TAIL, "qed", ""),
    ("parallels", padded(b"WithoutFreeSpace\x02\x00\x00\x00"), NO_TAIL, "parallels", ""),
    ("parallels-ext", padded(b"WithouFreSpacExt\x02\x00\x00\x00"), NO_TAIL, "parallels",
     "extended"),
    ("bochs", padded(b"Bochs Virtual HD Image\x00"), NO_TAIL, "bochs", ""),
    ("cloop", padded(b"#!/bin/sh\n#V2.0 Format\nmodprobe cloop file=$0\n"), NO_TAIL, "cloop", ""),
    ("luks", padded(b"LUKS\xba\xbe\x00\x01"), NO_TAIL, "luks", ""),
    ("dmg", bytes(HEAD_SIZE), b"koly" + bytes(508), "dmg", ""),
    # A hybrid ISO has a boot sector too; its volume descriptor says what it is.
    ("iso9660", HYBRID_ISO, NO_TAIL, "iso9660", ""),
    ("xz", padded(b"\xfd7zXZ\x00\x00\x04"), NO_TAIL, "xz", ""),
    ("gzip", padded(b"\x1f\x8b\x08\x00"), NO_TAIL, "gzip", ""),
    ("bzip2", padded(b"BZh91AY&SY"), NO_TAIL, "bzip2", ""),
    ("zstd", padded(b"\x28\xb5\x2f\xfd\x04"), NO_TAIL, "zstd", ""),
    ("zip", padded(b"PK\x03\x04\x14\x00"), NO_TAIL, "zip", ""),
    ("tar", at(257, b"ustar\x0000"), NO_TAIL, "tar", ""),
    # Near misses are raw: a magic needs all of itself, in its place.
    ("bzip2-without-block-magic", padded(b"BZh9 not bzip2") , NO_TAIL, "raw", "no partition table"),
    ("cookie-not-at-the-end", MBR, vhd_footer(2) + bytes(8), "raw", "MBR"),
    ("qfi-elsewhere", at(512, b"QFI\xfb"), NO_TAIL, "raw", "no partition table"),
    ("koly-not-at-the-end", bytes(HEAD_SIZE), bytes(8) + b"koly" + bytes(500), "raw",
     "no partition table"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("head", "tail", "fmt", "detail"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_detect(head: bytes, tail: bytes, fmt: ImageFormat, detail: str) -> None:
    assert detect_image(head, tail) == DetectedImage(fmt, detail)


def test_a_raw_image_has_no_problem() -> None:
    assert image_problem(detect_image(MBR, NO_TAIL), source="/vm/images/d.raw", size=MiB) is None


def test_a_converted_format_names_qemu_img() -> None:
    qcow2 = detect_image(padded(b"QFI\xfb\x00\x00\x00\x03"), NO_TAIL)
    message = image_problem(qcow2, source="/vm/images/debian-12.qcow2", size=MiB)
    assert message == (
        "/vm/images/debian-12.qcow2 is a qcow2 image (version 3), and bhyve boots raw images "
        "only: convert it with `qemu-img convert -O raw /vm/images/debian-12.qcow2 "
        "/vm/images/debian-12.raw` and name the raw file instead"
    )


@pytest.mark.parametrize("fmt", ["vmdk", "vhd", "vhdx", "vdi", "qed", "parallels", "dmg"])
def test_every_qemu_img_format_names_the_conversion(fmt: str) -> None:
    detected = next(DetectedImage(c[3], c[4]) for c in CASES if c[3] == fmt)
    message = image_problem(detected, source="/img/disk.img", size=MiB)
    assert message is not None
    assert "`qemu-img convert -O raw /img/disk.img /img/disk.raw`" in message


def test_the_suggested_names_are_quoted_and_never_the_source() -> None:
    vdi = DetectedImage("vdi")
    assert "qemu-img convert -O raw /img/disk /img/disk.raw`" in (
        image_problem(vdi, source="/img/disk", size=MiB) or ""
    )
    assert "qemu-img convert -O raw '/my img/a b.vdi' '/my img/a b.raw'`" in (
        image_problem(vdi, source="/my img/a b.vdi", size=MiB) or ""
    )


@pytest.mark.parametrize(
    ("fmt", "command"),
    [
        ("xz", "`xz -dk /img/debian.tar.xz`"),
        ("gzip", "`gzip -dk /img/debian.tar.xz`"),
        ("tar", "`tar -xf /img/debian.tar.xz`"),
        ("zip", "`unzip /img/debian.tar.xz`"),
    ],
)
def test_an_archive_names_the_unpacking(fmt: ImageFormat, command: str) -> None:
    message = image_problem(DetectedImage(fmt), source="/img/debian.tar.xz", size=MiB)
    assert message is not None
    assert "not a disk image" in message
    assert command in message


def test_install_media_and_encrypted_volumes_are_refused() -> None:
    iso = image_problem(DetectedImage("iso9660"), source="/i/x.iso", size=MiB)
    assert iso is not None and "[install] iso" in iso
    luks = image_problem(DetectedImage("luks"), source="/i/x.img", size=MiB)
    assert luks is not None and "LUKS" in luks


def test_too_small_to_be_a_disk() -> None:
    message = image_problem(detect_image(b"", b""), source="/i/empty.raw", size=0)
    assert message == "/i/empty.raw has 0 bytes: too small to be a disk image"


def test_probe_reads_a_real_file(tmp_path: Path) -> None:
    image = tmp_path / "fixed.vhd"
    with image.open("wb") as stream:
        stream.write(MBR[:512])
        stream.truncate(64 * MiB)
        stream.seek(64 * MiB)
        stream.write(vhd_footer(2))
    head, tail, size = read_probe(image, HEAD_SIZE, TAIL_SIZE)
    assert size == 64 * MiB + 512
    assert len(head) == HEAD_SIZE
    assert detect_image(head, tail) == DetectedImage("vhd", "fixed")
    short = tmp_path / "short"
    short.write_bytes(b"QFI\xfb\x00\x00\x00\x03")
    head, tail, size = read_probe(short, HEAD_SIZE, TAIL_SIZE)
    assert (head, tail, size) == (short.read_bytes(), short.read_bytes(), 8)
    assert detect_image(head, tail) == DetectedImage("qcow2", "version 3")
