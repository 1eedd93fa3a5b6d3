"""Host facts: parsers of FreeBSD tool output into one `HostFacts` snapshot.

Pure: every parser takes what a command printed and returns frozen values; running the
commands is the driver's job (host/freebsd.py). Formats follow reference/freebsd-bhyve.md §4.
Host output is bytes (§8.11: an interface description may hold any): every parser accepts
bytes, or text, and never fails on bytes that are not UTF-8; they reach values escaped
(`\\xff`), so status and logs stay UTF-8.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

InterfaceKind = Literal["tap", "bridge", "other"]
Output = bytes | str  # what a command printed: bytes from the Runner, text in tests


def host_text(data: Output) -> str:
    """Host output as text: bytes that are not UTF-8 become backslash escapes, never an error."""
    return data if isinstance(data, str) else data.decode("utf-8", "backslashreplace")


def _lines(output: Output) -> list[str]:
    # Only "\n" ends a line, as for the C tools that print it: str.splitlines() would also end
    # one at U+2028 or U+0085 inside a description, and the rest could read as an interface.
    return host_text(output).split("\n")


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
    regular: bool = True  # a file, not a device: only a file is grown to its `size`


@dataclass(frozen=True)
class ImageFile:
    """A disk's `source` image as its first and last bytes say (read only while the disk is
    missing). `problem` says why it cannot be copied: absent, unreadable, not raw."""

    exists: bool
    size: int = 0
    problem: str | None = None


@dataclass(frozen=True)
class DiskCopy:
    """A copy of an image into a disk that this daemon runs in the background, or the last one
    that failed (`error`), which the next resync retries."""

    source: str
    done: int = 0  # bytes of image data read so far
    total: int = 0
    rate: float = 0.0  # bytes per second
    error: str | None = None


# What one observation fills in, each from its own command or listing, each able to fail alone.
Observation = Literal["modules", "interfaces", "zvols", "vms", "disks", "snapshots"]


@dataclass(frozen=True)
class HostFacts:
    """One snapshot of the host. A field that could not be observed is None (`disks`, per
    path: the path is absent) and `unobserved` says why, so the planner plans nothing that
    needs it and everything else as usual (DESIGN.md rule 8)."""

    modules: frozenset[str] | None = frozenset()  # kernel modules present (loaded or in kernel)
    sysctls: Mapping[str, str] = field(default_factory=dict)  # only the OIDs asked for
    interfaces: Mapping[str, Interface] | None = field(default_factory=dict)
    vms: frozenset[str] | None = frozenset()  # names in vmm_dir
    zvols: Mapping[str, int] | None = None  # name -> volsize bytes; None when not observed
    disks: Mapping[str, DiskFile] = field(default_factory=dict)  # spec path -> facts
    files: Mapping[str, bool] = field(default_factory=dict)  # other paths -> exists (ISO, firmware)
    images: Mapping[str, ImageFile] = field(default_factory=dict)  # a missing disk's source
    # The snapshots missing zvols are cloned from -> their volsize in bytes (absent: no such
    # snapshot); None when not asked for or not observed.
    snapshots: Mapping[str, int] | None = None
    seeds: Mapping[str, str] = field(default_factory=dict)  # guest -> its seed's instance-id
    copies: Mapping[str, DiskCopy] = field(default_factory=dict)  # disk path -> copy in flight
    unobserved: Mapping[Observation, str] = field(default_factory=dict)  # what failed -> error


_KLD_FILE_ROW = re.compile(r"^\s*\d+\s+\d+\s+0x[0-9a-fA-F]+\s+\S+\s+(\S+)(?:\s+\(.*\))?\s*$")
_KLD_MODULE_ROW = re.compile(r"^\s*\d+\s+(?:\d+\s+)?(\S+)(?:\s+\(.*\))?\s*$")


def parse_kldstat(output: Output) -> frozenset[str]:
    """Kernel modules present, from `kldstat -v` (modules, compiled-in ones included) or
    plain `kldstat` (file names: `vmm.ko` -> `vmm`; the kernel file itself is not a module).
    `kldstat -m NAME` output (`Id  Refs Name` then ` 17    1 vmm`) parses too."""
    file_names: set[str] = set()
    module_names: set[str] = set()
    verbose = False
    for line in _lines(output):
        stripped = line.strip()
        if not stripped or stripped.startswith("Id ") or stripped == "Contains modules:":
            verbose = verbose or stripped == "Contains modules:"
            continue
        file_row = _KLD_FILE_ROW.match(line)
        if file_row:
            name = file_row.group(1)
            if name != "kernel":
                file_names.add(name.removesuffix(".ko"))
            continue
        module_row = _KLD_MODULE_ROW.match(line)
        if module_row:
            module_names.add(module_row.group(1))
    return frozenset(module_names if verbose else file_names | module_names)


_IF_HEADER = re.compile(r"^([^\s:]+): flags=([0-9a-fA-F]+)<([^>]*)>")
_MEMBER = re.compile(r"^member: (\S+) flags=")
_OPENED_BY = re.compile(r"^Opened by PID (\d+)$")
_UNIT = re.compile(r"^(tap|bridge)\d+$")


def _interface_kind(name: str, groups: tuple[str, ...]) -> InterfaceKind:
    # A renamed tap keeps its cloner's group, so groups decide before the name does.
    if "tap" in groups:
        return "tap"
    if "bridge" in groups:
        return "bridge"
    unit = _UNIT.match(name)
    if unit:
        return "tap" if unit.group(1) == "tap" else "bridge"
    return "other"


def parse_ifconfig(output: Output) -> dict[str, Interface]:
    """Every interface in `ifconfig -a` (or `ifconfig NAME`) output, in the order printed."""
    blocks: list[tuple[str, int, list[str]]] = []
    for line in _lines(output):
        header = _IF_HEADER.match(line)
        if header:
            blocks.append((header.group(1), int(header.group(2), 16), []))
        elif blocks and line[:1].isspace():
            blocks[-1][2].append(line.strip())
    interfaces: dict[str, Interface] = {}
    for name, flags, body in blocks:
        members: list[str] = []
        opened_by: int | None = None
        description: str | None = None
        groups: tuple[str, ...] = ()
        for line in body:
            if line.startswith("description: "):
                description = line[len("description: ") :]
            elif line.startswith("groups:"):
                groups = tuple(line[len("groups:") :].split())
            elif member := _MEMBER.match(line):
                members.append(member.group(1))
            elif opened := _OPENED_BY.match(line):
                opened_by = int(opened.group(1))
        interfaces[name] = Interface(
            name=name,
            kind=_interface_kind(name, groups),
            up=bool(flags & 0x1),  # IFF_UP
            members=tuple(members),
            opened_by=opened_by,
            description=description,
            groups=groups,
        )
    return interfaces


# Leaf OIDs always have a dot, so `sysctl: unknown oid ...` on a merged stderr is no value.
_SYSCTL_LINE = re.compile(r"^([A-Za-z0-9_%-]+(?:\.[A-Za-z0-9_%-]+)+): (.*)$")


def parse_sysctl(output: Output) -> dict[str, str]:
    """`name: value` lines; after a write (`name: 0 -> 1`) the value is the new one."""
    values: dict[str, str] = {}
    for line in _lines(output):
        match = _SYSCTL_LINE.match(line)
        if match is None:
            continue
        value = match.group(2)
        old, arrow, new = value.partition(" -> ")
        values[match.group(1)] = new if arrow else old
    return values


def parse_zfs_volumes(output: Output) -> dict[str, int]:
    """`zfs list -H -p -t volume -o name,volsize`: volume name -> volsize in bytes.

    Raises ValueError on a size that is not a plain byte count (output made without -p),
    rather than guess: a volume dropped here would look missing to the planner.
    """
    volumes: dict[str, int] = {}
    for line in _lines(output):
        if not line.strip():
            continue
        name, _, size = line.partition("\t")
        size = size.split("\t")[0].strip()
        if size == "-":
            continue
        if not size.isdigit():
            raise ValueError(f"zfs list: volsize of {name!r} is not a byte count: {size!r}")
        volumes[name.strip()] = int(size)
    return volumes


def parse_zfs_snapshots(text: Output) -> dict[str, int]:
    """`zfs list -H -p -t snapshot -o name,volsize SNAP...`: snapshot -> volsize in bytes, for
    snapshots of volumes (a filesystem's snapshot has no volsize, `-`, and is left out: it
    cannot be a disk)."""
    return parse_zfs_volumes(text)


Program = Literal["loader", "bhyve"]

# Lines a boot's program prints just before a failing exit 1, each from its source; a menu
# `quit` or a guest power-off prints none of them (reference §8.2, §8.3). A line must start
# with the text: a guest's console (stdio) shares the log and may mention it anywhere.
_FAILURE_LINES: dict[Program, re.Pattern[str]] = {
    "loader": re.compile(
        "|".join(
            (
                # usr.sbin/bhyveload/bhyveload.c main(): perror(...), exit(1).
                r"(?:vm_create|vm_open|vm_reinit|vm_setup_memory): ",
                r"bhyveload: ",  # errx()
                r"usage: bhyveload ",  # usage(), exit(1)
                # grub2-bhyve grub-core/kern/emu/main.c main(), each then exit(1), and
                # bhyve_hostif.c grub_emu_bhyve_init(), before the first.
                r"Error in initializing VM$",
                r"Error in parsing command line arguments$",
                r"Required VM name parameter not supplied$",
                r"Could not (?:create|reinit) VM ",
                r"Could not setup memory for VM$",
                r"grub-bhyve: error: ",  # grub_util_error(), exit(1)
            )
        )
    ),
    "bhyve": re.compile(
        # bhyverun.c vm_loop() (14.x amd64/bhyverun_machdep.c): VM_RUN failed, then
        # fbsdrun_start_thread() exit(1); usage(1) for a bad command line.
        r"vm_run error -?\d+, errno \d+$|Usage: bhyve "
    ),
}
_MAX_FAILURE_LINES = 3


def boot_failure(output: Output, program: Program) -> str | None:
    """The line(s) `program` printed in a boot's output that say it failed rather than
    stopped (the last few, joined by "; "); None when it printed none."""
    found = [
        line
        for line in (raw.rstrip("\r") for raw in _lines(output))
        if _FAILURE_LINES[program].match(line)
    ]
    return "; ".join(found[-_MAX_FAILURE_LINES:]) if found else None
