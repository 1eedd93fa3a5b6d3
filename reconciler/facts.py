"""Host facts: parsers of FreeBSD tool output into one `HostFacts` snapshot.

Pure: every parser takes the text a command printed and returns frozen values; running the
commands is the driver's job (host/freebsd.py). Formats follow reference/freebsd-bhyve.md §4.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

InterfaceKind = Literal["tap", "bridge", "other"]


@dataclass(frozen=True)
class Interface:
    name: str
    kind: InterfaceKind
    up: bool
    members: tuple[str, ...] = ()  # bridges only, in the order ifconfig prints them
    opened_by: int | None = None  # taps only: "Opened by PID N"
    description: str | None = None
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class DiskFile:
    """What a stat (and a read of the first bytes) says about a disk path."""

    exists: bool
    size: int = 0
    bootable: bool = False  # has an MBR/GPT boot sector or a UFS superblock


@dataclass(frozen=True)
class HostFacts:
    modules: frozenset[str] = frozenset()  # kernel modules present (loaded or compiled in)
    sysctls: Mapping[str, str] = field(default_factory=dict)  # only the OIDs asked for
    interfaces: Mapping[str, Interface] = field(default_factory=dict)
    vms: frozenset[str] = frozenset()  # names in vmm_dir
    zvols: Mapping[str, int] | None = None  # name -> volsize bytes; None when not observed
    disks: Mapping[str, DiskFile] = field(default_factory=dict)  # spec path -> facts
    files: Mapping[str, bool] = field(default_factory=dict)  # other paths -> exists (ISO, firmware)
