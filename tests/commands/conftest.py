"""Synthetic disk heads for the boot probe: what `file -s` would see at the start of an image."""

from __future__ import annotations

import pytest

from reconciler.bhyve import BOOT_PROBE_BYTES


@pytest.fixture
def blank_head() -> bytes:
    """A freshly truncated image: all zeros."""
    return bytes(BOOT_PROBE_BYTES)


@pytest.fixture
def mbr_head() -> bytes:
    """An image whose first sector ends with the 0x55 0xAA boot signature (MBR or GPT's PMBR)."""
    head = bytearray(BOOT_PROBE_BYTES)
    head[510:512] = b"\x55\xaa"
    return bytes(head)
