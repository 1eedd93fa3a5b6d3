"""Guest specs: the model of one `conf.d/NAME.toml` file, and its parsing and validation.

Pure: takes TOML text (or parsed tables) and returns frozen values or `SpecError`s that name
the file and the key. It never reads the host beyond what the caller hands it.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from reconciler.errors import ConflictError, SpecError
from reconciler.units import canonical_size, parse_duration, parse_size

Loader = Literal["bhyveload", "grub", "uefi"]
DesiredState = Literal["running", "stopped"]
RestartPolicy = Literal["on-failure", "always", "never"]
OnChange = Literal["restart", "next-boot"]
DiskEmulation = Literal["virtio-blk", "ahci-hd", "nvme"]
NicEmulation = Literal["virtio-net", "e1000"]

DEFAULT_FIRMWARE = "/usr/local/share/uefi-firmware/BHYVE_UEFI.fd"
DEFAULT_MEMORY = "512M"


@dataclass(frozen=True)
class Disk:
    """One `[[disk]]`: an image file or device (`path`) or a ZFS volume (`zvol`)."""

    path: str | None = None
    zvol: str | None = None
    size: int | None = None  # bytes; created when missing, never shrunk
    emulation: DiskEmulation = "virtio-blk"
    options: tuple[str, ...] = ()

    @property
    def device(self) -> str:
        """The path bhyve opens: the file, or `/dev/zvol/POOL/DATASET`."""
        if self.path is not None:
            return self.path
        assert self.zvol is not None
        return f"/dev/zvol/{self.zvol}"


@dataclass(frozen=True)
class Nic:
    """One `[[nic]]`. `tap` is None when the reconciler allocates one."""

    tap: str | None = None
    bridge: str | None = None
    emulation: NicEmulation = "virtio-net"
    mac: str | None = None


@dataclass(frozen=True)
class Install:
    """`[install]`: install media, booted while the first disk has no boot sector."""

    iso: str
    force: bool = False


@dataclass(frozen=True)
class Uefi:
    firmware: str = DEFAULT_FIRMWARE
    vars: bool = False


@dataclass(frozen=True)
class Graphics:
    """`[graphics]`: the UEFI framebuffer (VNC). Only valid with `loader = "uefi"`."""

    listen: str = "127.0.0.1:5900"
    width: int = 1024
    height: int = 768
    wait: bool = False
    tablet: bool = False


@dataclass(frozen=True)
class Grub:
    root: str | None = None  # None: `cd0` while installing, else `hd0,msdos1`
    config: str | None = None  # grub commands written to grub.cfg


@dataclass(frozen=True)
class GuestSpec:
    """A validated guest. `source` is the file it came from (for messages)."""

    name: str
    source: str = ""
    cpus: int = 1
    memory: str = DEFAULT_MEMORY  # canonical size text as bhyve takes it, e.g. "1024M"
    state: DesiredState = "running"
    loader: Loader = "bhyveload"
    console: str = "nmdm"  # "nmdm" or a device path; see console_device()
    order: int = 0
    restart: RestartPolicy = "on-failure"
    on_change: OnChange = "restart"
    stop_timeout: float | None = None  # seconds; None = the daemon config's
    utc_clock: bool = False
    ignore_msrs: bool = False
    wire_memory: bool = False
    passthru: tuple[str, ...] = ()
    loader_env: tuple[tuple[str, str], ...] = ()
    install: Install | None = None
    disks: tuple[Disk, ...] = ()
    nics: tuple[Nic, ...] = ()
    uefi: Uefi = field(default_factory=Uefi)
    graphics: Graphics | None = None
    grub: Grub = field(default_factory=Grub)

    @property
    def wired(self) -> bool:
        """`-S` for loader and bhyve: asked for, or forced by PCI passthrough."""
        return self.wire_memory or bool(self.passthru)

    @property
    def console_device(self) -> str:
        """The device bhyve and the loader open (the A side of an nmdm pair)."""
        if self.console == "nmdm":
            return f"/dev/nmdm-{self.name}.1A"
        return self.console

    @property
    def console_peer(self) -> str | None:
        """The device a person connects to (`cu -l`), for nmdm consoles."""
        dev = self.console_device
        if dev.startswith("/dev/nmdm") and dev.endswith("A"):
            return dev[:-1] + "B"
        return None

    @property
    def uses_nmdm(self) -> bool:
        return self.console_device.startswith("/dev/nmdm")


# --- The rules a value must follow to reach a command line (DESIGN.md rule 6) ---------------

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,30}")
NAME_RULE = "1 to 31 characters from A-Z a-z 0-9 _ . -, starting with a letter or digit"
TAP_RE = re.compile(r"tap[0-9]{1,5}")
IFNAME_RE = re.compile(r"[a-z][a-z0-9_.]{0,14}")
IFNAME_RULE = "an interface name: a lower-case letter, then up to 14 of a-z 0-9 _ ."
MAX_CPUS = 256
MIN_MEMORY = 1 << 20
PATH_MAX = 1023
FIRST_PCI_SLOT = 2
LAST_PCI_SLOT = 28  # 29 fbuf, 30 xhci, 31 install media, as vmrun.sh lays them out
PCI_CAPACITY = LAST_PCI_SLOT - FIRST_PCI_SLOT + 1

STATES: tuple[DesiredState, ...] = ("running", "stopped")
LOADERS: tuple[Loader, ...] = ("bhyveload", "grub", "uefi")
RESTART_POLICIES: tuple[RestartPolicy, ...] = ("on-failure", "always", "never")
ON_CHANGES: tuple[OnChange, ...] = ("restart", "next-boot")
DISK_EMULATIONS: tuple[DiskEmulation, ...] = ("virtio-blk", "ahci-hd", "nvme")
NIC_EMULATIONS: tuple[NicEmulation, ...] = ("virtio-net", "e1000")
DISK_FLAGS = ("nocache", "direct", "ro", "nodelete")

_MAC_RE = re.compile(r"[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}")
_ENV_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
_PASSTHRU_RE = re.compile(r"([0-9]{1,3})/([0-9]{1,2})/([0-9]{1,2})")
_ZVOL_PART_RE = re.compile(r"[A-Za-z0-9_.:][A-Za-z0-9_.:-]*")
_ZVOL_MAX = 255  # ZFS_MAX_DATASET_NAME_LEN - 1
_HOSTNAME_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")
_SECTORSIZE_RE = re.compile(r"sectorsize=([0-9]+)(?:/([0-9]+))?")
_SYNTAX_LOCATION_RE = re.compile(r"\s*\(at line (\d+), column \d+\)$|\s*\(at end of document\)$")

_TOP_KEYS = (
    "name", "cpus", "memory", "state", "loader", "console", "order", "restart", "on_change",
    "stop_timeout", "utc_clock", "ignore_msrs", "wire_memory", "passthru", "loader_env",
    "install", "disk", "nic", "uefi", "graphics", "grub",
)  # fmt: skip
_INSTALL_KEYS = ("iso", "force")
_DISK_KEYS = ("path", "zvol", "size", "emulation", "options")
_NIC_KEYS = ("tap", "bridge", "emulation", "mac")
_UEFI_KEYS = ("firmware", "vars")
_GRAPHICS_KEYS = ("listen", "width", "height", "wait", "tablet")
_GRUB_KEYS = ("root", "config")
# Which loader a loader-specific table belongs to.
_LOADER_TABLES: tuple[tuple[str, Loader], ...] = (
    ("loader_env", "bhyveload"),
    ("grub", "grub"),
    ("uefi", "uefi"),
    ("graphics", "uefi"),
)


def _is_control(char: str) -> bool:
    code = ord(char)
    return code < 0x20 or 0x7F <= code <= 0x9F


def _show(value: Any) -> str:
    """A value as TOML would spell it, short enough for a one-line message."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        text = value if len(value) <= 40 else value[:37] + "..."
        return '"' + text.encode("unicode_escape").decode("ascii").replace('"', '\\"') + '"'
    if isinstance(value, int | float):
        return repr(value)
    return ""


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        kind = "a boolean"
    elif isinstance(value, int):
        kind = "an integer"
    elif isinstance(value, float):
        kind = "a float"
    elif isinstance(value, str):
        kind = "a string"
    elif isinstance(value, list):
        return "an array"
    elif isinstance(value, Mapping):
        return "a table"
    else:
        return "a date/time"
    return f"{kind} ({_show(value)})"


def _char_name(char: str) -> str:
    if char == ",":
        return "a comma"
    if char == "%":
        return "`%`"
    if _is_control(char):
        return f"a control character ({char.encode('unicode_escape').decode('ascii')})"
    return "whitespace"


def _did_you_mean(word: str, choices: Sequence[str]) -> str | None:
    by_lower = {choice.lower(): choice for choice in choices}
    close = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=0.6)
    return by_lower[close[0]] if close else None


def _unknown_key_message(key: str, known: Sequence[str]) -> str:
    near = _did_you_mean(key, known)
    if near is not None:
        return f"unknown key; did you mean `{near}`?"
    return "unknown key; expected one of " + ", ".join(f"`{k}`" for k in known)


def path_problem(text: str, *, absolute: bool = True) -> str | None:
    """Why `text` cannot be a host path on a bhyve or loader command line, or None if it can.

    A comma would start a new bhyve option inside `-s`/`-l`; whitespace and control
    characters break device.map lines and log lines; `%` starts bhyve's `%(var)` expansion.
    """
    if not text:
        return "must not be empty"
    if absolute and not text.startswith("/"):
        return "must be an absolute path"
    if len(text) > PATH_MAX:
        return f"is longer than {PATH_MAX} characters"
    bad = next((c for c in text if c in ",%" or c.isspace() or _is_control(c)), None)
    if bad is not None:
        return f"must not contain {_char_name(bad)}: it would reach bhyve's option syntax"
    parts = text.split("/")[1:] if text.startswith("/") else text.split("/")
    if text == "/" or text.endswith("/"):
        return "must name a file, not a directory ending in `/`"
    if "" in parts:
        return "must be normalised: no `//`"
    if "." in parts or ".." in parts:
        return "must be normalised: no `.` or `..` components"
    return None


def zvol_problem(text: str) -> str | None:
    """Why `text` cannot name a ZFS volume (`pool/dataset[/...]`), or None if it can."""
    parts = text.split("/")
    if len(parts) < 2 or not all(parts):
        return 'expected a ZFS volume name like "zroot/vm/disk0"'
    if len(text) > _ZVOL_MAX:
        return f"is longer than {_ZVOL_MAX} characters"
    for part in parts:
        if part in (".", "..") or _ZVOL_PART_RE.fullmatch(part) is None:
            return (
                f"component {_show(part)} must be made of A-Z a-z 0-9 _ . : - "
                "and not start with `-`"
            )
    if not parts[0][0].isalpha():
        return "a ZFS pool name starts with a letter"
    return None


def _text_problem(text: str, *, multiline: bool = False) -> str | None:
    allowed = "\t\n\r" if multiline else ""
    bad = next((c for c in text if _is_control(c) and c not in allowed), None)
    if bad is not None:
        return f"must not contain {_char_name(bad)}"
    return None


class _Reader:
    """Collects every error of one file while its tables are walked."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.errors: list[SpecError] = []

    def error(self, key: str, message: str) -> None:
        self.errors.append(SpecError(self.file, key, message))


class _Table:
    """One TOML table at a dotted `prefix`; typed getters report wrong values and return None."""

    def __init__(
        self, reader: _Reader, data: Mapping[str, Any], prefix: str, known: Sequence[str]
    ) -> None:
        self.reader = reader
        self.data = data
        self.prefix = prefix
        for key in data:
            if key not in known:
                reader.error(self.path(key), _unknown_key_message(key, known))

    def path(self, key: str) -> str:
        return f"{self.prefix}.{key}" if self.prefix else key

    def error(self, key: str, message: str) -> None:
        self.reader.error(self.path(key), message)

    def __contains__(self, key: str) -> bool:
        return key in self.data

    def _typed(self, key: str, kind: type, what: str) -> Any:
        if key not in self.data:
            return None
        value = self.data[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            self.error(key, f"expected {what}, got {_describe(value)}")
            return None
        return value

    def string(self, key: str) -> str | None:
        return cast("str | None", self._typed(key, str, "a string"))

    def boolean(self, key: str) -> bool | None:
        return cast("bool | None", self._typed(key, bool, "true or false"))

    def integer(self, key: str, low: int | None = None, high: int | None = None) -> int | None:
        value = cast("int | None", self._typed(key, int, "an integer"))
        if value is None:
            return None
        if (low is not None and value < low) or (high is not None and value > high):
            if high is None:
                self.error(key, f"must be at least {low}, got {value}")
            elif low is None:
                self.error(key, f"must be at most {high}, got {value}")
            else:
                self.error(key, f"must be between {low} and {high}, got {value}")
            return None
        return value

    def choice(self, key: str, choices: Sequence[str]) -> str | None:
        value = self.string(key)
        if value is None or value in choices:
            return value
        message = "expected one of " + ", ".join(_show(c) for c in choices)
        near = _did_you_mean(value, choices)
        if near is not None:
            message += f"; did you mean {_show(near)}?"
        self.error(key, message)
        return None

    def path_value(self, key: str) -> str | None:
        value = self.string(key)
        if value is None:
            return None
        problem = path_problem(value)
        if problem is not None:
            self.error(key, f"{_show(value)} {problem}")
            return None
        return value

    def size_text(self, key: str) -> str | None:
        """The canonical size text at `key` (`1024m` -> `1024M`)."""
        if key not in self.data:
            return None
        value = self.data[key]
        if not isinstance(value, str):
            self.error(key, f'expected a size string like "16G", got {_describe(value)}')
            return None
        try:
            return canonical_size(value)
        except ValueError as exc:
            self.error(key, str(exc))
            return None

    def array(self, key: str) -> list[Any] | None:
        return cast("list[Any] | None", self._typed(key, list, "an array"))

    def table(self, key: str, known: Sequence[str]) -> _Table | None:
        if key not in self.data:
            return None
        value = self.data[key]
        if not isinstance(value, Mapping):
            self.error(key, f"expected a table ([{self.path(key)}]), got {_describe(value)}")
            return None
        return _Table(self.reader, value, self.path(key), known)

    def tables(self, key: str, known: Sequence[str]) -> list[_Table]:
        """The `[[key]]` array of tables, each with its `key[i]` prefix."""
        if key not in self.data:
            return []
        value = self.data[key]
        if isinstance(value, Mapping):
            self.error(key, f"expected an array of tables: write [[{key}]], not [{key}]")
            return []
        if not isinstance(value, list):
            self.error(key, f"expected an array of tables ([[{key}]]), got {_describe(value)}")
            return []
        out = []
        for index, item in enumerate(value):
            item_key = f"{self.path(key)}[{index}]"
            if isinstance(item, Mapping):
                out.append(_Table(self.reader, item, item_key, known))
            else:
                self.reader.error(item_key, f"expected a table, got {_describe(item)}")
        return out


def _parse_name(top: _Table, stem: str) -> str | None:
    if "name" in top:
        name = top.string("name")
        if name is not None and NAME_RE.fullmatch(name) is None:
            top.error("name", f"{_show(name)} is not a valid guest name: {NAME_RULE}")
            return None
        return name
    if NAME_RE.fullmatch(stem) is None:
        top.error(
            "name",
            f"the file name {_show(stem)} is not a valid guest name ({NAME_RULE}); "
            "rename the file or set `name`",
        )
        return None
    return stem


def _parse_memory(top: _Table) -> str | None:
    memory = top.size_text("memory")
    if memory is not None and parse_size(memory) < MIN_MEMORY:
        top.error("memory", f"must be at least 1M, got {_show(memory)}")
        return None
    return memory


def _parse_console(top: _Table) -> str | None:
    console = top.string("console")
    if console is None or console == "nmdm":
        return console
    problem = path_problem(console)
    if problem is not None:
        top.error("console", f'expected "nmdm" or a device path; {_show(console)} {problem}')
        return None
    return console


def _parse_duration_key(table: _Table, key: str) -> float | None:
    if key not in table:
        return None
    value = table.data[key]
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        table.error(key, f'expected a duration like "120s", got {_describe(value)}')
        return None
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        table.error(key, str(exc))
        return None
    if seconds <= 0:
        table.error(key, "must be greater than zero")
        return None
    return seconds


def _parse_passthru(top: _Table) -> tuple[str, ...]:
    items = top.array("passthru") or []
    seen: dict[str, int] = {}
    out = []
    for index, item in enumerate(items):
        key = f"passthru[{index}]"
        if not isinstance(item, str):
            top.reader.error(key, f'expected "bus/slot/function", got {_describe(item)}')
            continue
        match = _PASSTHRU_RE.fullmatch(item)
        if match is None:
            top.reader.error(key, f'expected "bus/slot/function" like "2/0/0", got {_show(item)}')
            continue
        bus, slot, func = (int(g) for g in match.groups())
        if bus > 255 or slot > 31 or func > 7:
            top.reader.error(
                key, f"{_show(item)} is out of range: bus 0-255, slot 0-31, function 0-7"
            )
            continue
        canonical = f"{bus}/{slot}/{func}"
        if canonical in seen:
            top.reader.error(key, f"same device as passthru[{seen[canonical]}]")
            continue
        seen[canonical] = index
        out.append(canonical)
    return tuple(out)


def _parse_loader_env(top: _Table) -> tuple[tuple[str, str], ...]:
    if "loader_env" not in top:
        return ()
    value = top.data["loader_env"]
    if not isinstance(value, Mapping):
        top.error("loader_env", f"expected a table ([loader_env]), got {_describe(value)}")
        return ()
    out = []
    for name, item in value.items():
        key = f"loader_env.{name}"
        # The argv element is `NAME=VALUE`, so the name alone decides whether it could be
        # mistaken for an option.
        if _ENV_KEY_RE.fullmatch(name) is None:
            top.reader.error(
                key, "a loader variable name is a letter or `_`, then letters, digits, `_` or `.`"
            )
            continue
        if not isinstance(item, str):
            top.reader.error(key, f"expected a string, got {_describe(item)}")
            continue
        problem = _text_problem(item)
        if problem is not None:
            top.reader.error(key, problem)
            continue
        out.append((name, item))
    return tuple(out)


def _parse_install(top: _Table) -> Install | None:
    table = top.table("install", _INSTALL_KEYS)
    if table is None:
        return None
    iso = table.path_value("iso")
    force = table.boolean("force")
    if "iso" not in table:
        table.error("iso", "missing: [install] needs the path of the install media")
    if iso is None:
        return None
    return Install(iso=iso, force=bool(force))


def _parse_disk_options(table: _Table) -> tuple[str, ...]:
    items = table.array("options") or []
    seen: dict[str, int] = {}
    out = []
    for index, item in enumerate(items):
        key = f"{table.path('options')}[{index}]"
        if not isinstance(item, str):
            table.reader.error(key, f"expected a string, got {_describe(item)}")
            continue
        name = item.split("=", 1)[0]
        if item not in DISK_FLAGS:
            match = _SECTORSIZE_RE.fullmatch(item)
            if match is None:
                message = (
                    "expected one of "
                    + ", ".join(_show(f) for f in DISK_FLAGS)
                    + ' or "sectorsize=N" / "sectorsize=N/M"'
                )
                near = _did_you_mean(item, DISK_FLAGS)
                if near is not None:
                    message += f"; did you mean {_show(near)}?"
                table.reader.error(key, message)
                continue
            logical = int(match.group(1))
            physical = int(match.group(2) or logical)
            if not all(_is_sector_size(n) for n in (logical, physical)):
                table.reader.error(key, "sector sizes are powers of two from 512 to 65536")
                continue
            if logical > physical:
                table.reader.error(key, "the logical sector size cannot exceed the physical one")
                continue
        if name in seen:
            table.reader.error(key, f"`{name}` is already given in options[{seen[name]}]")
            continue
        seen[name] = index
        out.append(item)
    return tuple(out)


def _is_sector_size(n: int) -> bool:
    return 512 <= n <= 65536 and n & (n - 1) == 0


def _parse_disk(table: _Table) -> Disk | None:
    errors_before = len(table.reader.errors)
    path = table.path_value("path")
    zvol = table.string("zvol")
    if "path" in table and "zvol" in table:
        table.error("zvol", "give either `path` or `zvol`, not both")
    elif "path" not in table and "zvol" not in table:
        table.reader.error(
            table.prefix, "needs `path` (an image file or device) or `zvol` (pool/dataset)"
        )
    if zvol is not None:
        problem = zvol_problem(zvol)
        if problem is not None:
            table.error("zvol", f"{_show(zvol)}: {problem}")
    size = table.size_text("size")
    emulation = table.choice("emulation", DISK_EMULATIONS)
    options = _parse_disk_options(table)
    if len(table.reader.errors) > errors_before:
        return None
    return Disk(
        path=path,
        zvol=zvol,
        size=parse_size(size) if size is not None else None,
        emulation=cast(DiskEmulation, emulation or "virtio-blk"),
        options=options,
    )


def _parse_disks(top: _Table) -> tuple[Disk, ...]:
    disks: list[Disk] = []
    devices: dict[str, str] = {}
    for table in top.tables("disk", _DISK_KEYS):
        disk = _parse_disk(table)
        if disk is None:
            continue
        key = "path" if disk.path is not None else "zvol"
        if disk.device in devices:
            table.error(key, f"same device as {devices[disk.device]}")
            continue
        devices[disk.device] = table.prefix
        disks.append(disk)
    return tuple(disks)


def _parse_mac(table: _Table) -> str | None:
    mac = table.string("mac")
    if mac is None:
        return None
    if _MAC_RE.fullmatch(mac) is None:
        table.error("mac", f'expected a MAC address like "58:9c:fc:00:00:01", got {_show(mac)}')
        return None
    mac = mac.lower()
    if int(mac[:2], 16) & 1:
        table.error("mac", f"{_show(mac)} is a multicast address; a NIC needs a unicast one")
        return None
    if mac == "00:00:00:00:00:00":
        table.error("mac", "the all-zero address is not a usable NIC address")
        return None
    return mac


def _parse_nic(table: _Table) -> Nic | None:
    errors_before = len(table.reader.errors)
    tap = table.string("tap")
    if tap is not None and TAP_RE.fullmatch(tap) is None:
        table.error("tap", f'expected a tap interface name like "tap0", got {_show(tap)}')
    bridge = table.string("bridge")
    if bridge is not None and IFNAME_RE.fullmatch(bridge) is None:
        table.error("bridge", f"expected {IFNAME_RULE}, got {_show(bridge)}")
    emulation = table.choice("emulation", NIC_EMULATIONS)
    mac = _parse_mac(table)
    if len(table.reader.errors) > errors_before:
        return None
    return Nic(
        tap=tap, bridge=bridge, emulation=cast(NicEmulation, emulation or "virtio-net"), mac=mac
    )


def _parse_nics(top: _Table) -> tuple[Nic, ...]:
    nics: list[Nic] = []
    taps: dict[str, str] = {}
    macs: dict[str, str] = {}
    for table in top.tables("nic", _NIC_KEYS):
        nic = _parse_nic(table)
        if nic is None:
            continue
        if nic.tap is not None and nic.tap in taps:
            table.error("tap", f"same tap as {taps[nic.tap]}")
            continue
        if nic.mac is not None and nic.mac in macs:
            table.error("mac", f"same MAC address as {macs[nic.mac]}")
            continue
        if nic.tap is not None:
            taps[nic.tap] = table.prefix
        if nic.mac is not None:
            macs[nic.mac] = table.prefix
        nics.append(nic)
    return tuple(nics)


def _parse_uefi(top: _Table) -> Uefi:
    table = top.table("uefi", _UEFI_KEYS)
    if table is None:
        return Uefi()
    firmware = table.path_value("firmware")
    vars_ = table.boolean("vars")
    return Uefi(firmware=firmware or DEFAULT_FIRMWARE, vars=bool(vars_))


def _listen_problem(listen: str) -> str | None:
    host, sep, port = listen.rpartition(":")
    if not sep or not host:
        return 'expected "host:port" like "127.0.0.1:5900"'
    if re.fullmatch(r"[0-9.]+", host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return f"{_show(host)} is not an IPv4 address"
    elif _HOSTNAME_RE.fullmatch(host) is None or ".." in host:
        return f"{_show(host)} is not an IPv4 address or a host name"
    if not port.isascii() or not port.isdigit() or not 1 <= int(port) <= 65535:
        return f"the port must be a number from 1 to 65535, got {_show(port)}"
    return None


def _parse_graphics(top: _Table) -> Graphics | None:
    table = top.table("graphics", _GRAPHICS_KEYS)
    if table is None:
        return None
    defaults = Graphics()
    listen = table.string("listen")
    if listen is not None:
        problem = _listen_problem(listen)
        if problem is not None:
            table.error("listen", problem)
            listen = None
    width = table.integer("width", 640, 3840)
    height = table.integer("height", 480, 2160)
    wait = table.boolean("wait")
    tablet = table.boolean("tablet")
    return Graphics(
        listen=listen or defaults.listen,
        width=width or defaults.width,
        height=height or defaults.height,
        wait=bool(wait),
        tablet=bool(tablet),
    )


def _parse_grub(top: _Table) -> Grub:
    table = top.table("grub", _GRUB_KEYS)
    if table is None:
        return Grub()
    root = table.string("root")
    if root is not None:
        bad = next((c for c in root if c.isspace() or _is_control(c)), None)
        if not root:
            table.error("root", 'expected a grub device like "hd0,msdos1"')
            root = None
        elif bad is not None:
            table.error("root", f"must not contain {_char_name(bad)}")
            root = None
        elif root.startswith("-"):
            table.error("root", "must not start with `-`: grub-bhyve would read it as an option")
            root = None
    config = table.string("config")
    if config is not None:
        problem = _text_problem(config, multiline=True)
        if problem is not None:
            table.error("config", problem)
            config = None
    return Grub(root=root, config=config)


def _count(value: Any) -> int:
    return len(value) if isinstance(value, list) else 0


def parse_guest(
    data: Mapping[str, Any], *, file: str, stem: str
) -> tuple[GuestSpec | None, list[SpecError]]:
    """Validate one guest's parsed TOML; the spec, or None and every error in the file.

    `stem` is the file name without `.toml`, the guest's name unless `name` is set.
    """
    reader = _Reader(file)
    top = _Table(reader, data, "", _TOP_KEYS)
    name = _parse_name(top, stem)
    cpus = top.integer("cpus", 1, MAX_CPUS)
    memory = _parse_memory(top)
    state = top.choice("state", STATES)
    loader = top.choice("loader", LOADERS)
    console = _parse_console(top)
    order = top.integer("order")
    restart = top.choice("restart", RESTART_POLICIES)
    on_change = top.choice("on_change", ON_CHANGES)
    stop_timeout = _parse_duration_key(top, "stop_timeout")
    utc_clock = top.boolean("utc_clock")
    ignore_msrs = top.boolean("ignore_msrs")
    wire_memory = top.boolean("wire_memory")
    passthru = _parse_passthru(top)
    loader_env = _parse_loader_env(top)
    install = _parse_install(top)
    disks = _parse_disks(top)
    nics = _parse_nics(top)
    uefi = _parse_uefi(top)
    graphics = _parse_graphics(top)
    grub = _parse_grub(top)

    effective_loader = loader if "loader" in top else "bhyveload"
    if effective_loader is not None:
        for key, needs in _LOADER_TABLES:
            if key in top and effective_loader != needs:
                top.error(
                    key,
                    f'only valid with loader = "{needs}" (this guest uses "{effective_loader}")',
                )
    if data.get("disk", []) == []:
        top.error("disk", "a guest needs at least one [[disk]]")
    devices = _count(data.get("disk")) + _count(data.get("nic")) + _count(data.get("passthru"))
    if devices > PCI_CAPACITY:
        top.error(
            "disk",
            f"{devices} devices (disks, NICs and passthru) do not fit the {PCI_CAPACITY} "
            f"PCI slots {FIRST_PCI_SLOT}-{LAST_PCI_SLOT}",
        )

    if reader.errors or name is None:
        return None, reader.errors
    spec = GuestSpec(
        name=name,
        source=file,
        cpus=cpus or 1,
        memory=memory or DEFAULT_MEMORY,
        state=cast(DesiredState, state or "running"),
        loader=cast(Loader, loader or "bhyveload"),
        console=console or "nmdm",
        order=order or 0,
        restart=cast(RestartPolicy, restart or "on-failure"),
        on_change=cast(OnChange, on_change or "restart"),
        stop_timeout=stop_timeout,
        utc_clock=bool(utc_clock),
        ignore_msrs=bool(ignore_msrs),
        wire_memory=bool(wire_memory),
        passthru=passthru,
        loader_env=loader_env,
        install=install,
        disks=disks,
        nics=nics,
        uefi=uefi,
        graphics=graphics,
        grub=grub,
    )
    return spec, []


def syntax_error(exc: tomllib.TOMLDecodeError, text: str, *, file: str) -> SpecError:
    """One `SpecError` for a TOML syntax error, keyed `line N` as tomllib locates it."""
    message = str(exc)
    match = _SYNTAX_LOCATION_RE.search(message)
    if match is None:
        return SpecError(file, "(syntax)", message)
    line = match.group(1) or str(max(1, len(text.splitlines())))
    return SpecError(file, f"line {line}", message[: match.start()] or message)


def parse_guest_text(
    text: str, *, file: str, stem: str
) -> tuple[GuestSpec | None, list[SpecError]]:
    """`parse_guest` on TOML text; a syntax error is the one error reported."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return None, [syntax_error(exc, text, file=file)]
    return parse_guest(data, file=file, stem=stem)


# --- Conflicts between files (DESIGN.md rule 4) --------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """A valid spec from one file, with the file's st_mtime_ns to order claims."""

    file: str
    spec: GuestSpec
    mtime_ns: int = 0


def _claims(spec: GuestSpec) -> list[tuple[str, str, str]]:
    """(kind, thing, key) for everything a guest holds exclusively."""
    out = [("name", spec.name, "name"), ("console", spec.console_device, "console")]
    for index, nic in enumerate(spec.nics):
        if nic.tap is not None:
            out.append(("tap", nic.tap, f"nic[{index}].tap"))
    for index, disk in enumerate(spec.disks):
        key = f"disk[{index}].path" if disk.path is not None else f"disk[{index}].zvol"
        out.append(("disk", disk.device, key))
    return out


def check_conflicts(
    candidates: Sequence[Candidate], incumbents: Mapping[str, str]
) -> tuple[list[Candidate], list[ConflictError]]:
    """Accept the candidates that share nothing; refuse the rest with a `ConflictError` each.

    `incumbents` maps guest name -> file of the previously accepted set. Of two claims on one
    name, tap, disk or console, an incumbent (the same file still providing the same guest)
    keeps it; otherwise the earlier-changed file does (smaller mtime_ns, then smaller path).
    Accepted candidates come back in their input order.
    """

    def rank(candidate: Candidate) -> tuple[bool, int, str]:
        incumbent = incumbents.get(candidate.spec.name) == candidate.file
        return (not incumbent, candidate.mtime_ns, candidate.file)

    held: dict[tuple[str, str], Candidate] = {}
    accepted: set[int] = set()
    errors: list[ConflictError] = []
    for index in sorted(range(len(candidates)), key=lambda i: rank(candidates[i])):
        candidate = candidates[index]
        claims = _claims(candidate.spec)
        clashes = []
        for kind, thing, key in claims:
            holder = held.get((kind, thing))
            if holder is None:
                continue
            # Two nmdm consoles clash only when the names do, which is already reported.
            if kind == "console" and candidate.spec.console == holder.spec.console == "nmdm":
                continue
            clashes.append((kind, thing, key, holder))
        if not clashes:
            accepted.add(index)
            for kind, thing, _key in claims:
                held[(kind, thing)] = candidate
            continue
        for kind, thing, key, holder in clashes:
            what = "guest name" if kind == "name" else kind
            errors.append(
                ConflictError(
                    candidate.file,
                    key,
                    f"{what} `{thing}` is already claimed by guest `{holder.spec.name}` "
                    f"in {holder.file}",
                )
            )
    return [c for i, c in enumerate(candidates) if i in accepted], errors
