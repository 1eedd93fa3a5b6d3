"""The validation rules of guest-file keys that are code, not a type or a range.

Each is a `schema.Rule` (or a table rule) that `guestkeys` attaches to one key: it gets the
value already of the right TOML type, reports what is wrong at the key's path, and returns the
model value or None. Pure; the messages are part of the interface (tests quote them).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from reconciler.placement import host_name_problem
from reconciler.schema import field_default
from reconciler.spec import GuestSpec, Nic, Topology
from reconciler.tomlreader import Entry, Section
from reconciler.units import parse_size
from reconciler.valuerules import (
    IFNAME_RE,
    IFNAME_RULE,
    NAME_RE,
    NAME_RULE,
    TAP_RE,
    argv_text_problem,
    describe,
    file_text_problem,
    path_problem,
    show,
    word_problem,
)

MIN_MEMORY = 1 << 20
FIRST_PCI_SLOT = 2
LAST_PCI_SLOT = 28  # 29 fbuf, 30 xhci, 31 install media, as vmrun.sh lays them out
PCI_CAPACITY = LAST_PCI_SLOT - FIRST_PCI_SLOT + 1

UUID_RE = re.compile(r"[0-9A-Fa-f]{8}(?:-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}")
_MAC_RE = re.compile(r"[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}")
_ENV_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
_PASSTHRU_RE = re.compile(r"([0-9]{1,3})/([0-9]{1,2})/([0-9]{1,2})")
_HOSTNAME_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")


def guest_name(section: Section, key: str, name: str) -> str | None:
    if NAME_RE.fullmatch(name) is None:
        section.error(key, f"{show(name)} is not a valid guest name: {NAME_RULE}")
        return None
    return name


def name_from_file(section: Section, stem: str) -> str | None:
    """The guest's name when the file sets none: its file name without `.toml`."""
    if NAME_RE.fullmatch(stem) is None:
        section.error(
            "name",
            f"the file name {show(stem)} is not a valid guest name ({NAME_RULE}); "
            "rename the file or set `name`",
        )
        return None
    return stem


def memory(section: Section, key: str, size: str) -> str | None:
    if parse_size(size) < MIN_MEMORY:
        section.error(key, f"must be at least 1M, got {show(size)}")
        return None
    return size


def uuid(section: Section, key: str, value: str) -> str | None:
    # bhyve -U: uuid_from_string(3) takes the 8-4-4-4-12 hex form, either case; the text is
    # kept as written so the guest sees exactly the UUID it had.
    if UUID_RE.fullmatch(value) is None:
        section.error(
            key, f'expected a UUID like "8e3f4b1c-61b6-11ef-9a0c-002590f1a2b3", got {show(value)}'
        )
        return None
    return value


def topology(section: Section, key: str, value: Topology) -> Topology | None:
    """bhyverun.c calc_topology: with the vCPU count given, sockets (default: that count) x
    cores x threads (default 1 each) must equal it, or bhyve exits "Topology (...) does not
    match N vCPUs"."""
    parts = (value.sockets, value.cores, value.threads)
    if all(part is None for part in parts):
        return None  # an empty [topology] is bhyve's default
    cpus = section.data.get("cpus", field_default(GuestSpec, "cpus"))
    if not isinstance(cpus, int) or isinstance(cpus, bool):
        return value  # cpus is wrong itself, and reported
    sockets = cpus if value.sockets is None else value.sockets
    product = sockets * (value.cores or 1) * (value.threads or 1)
    if product != cpus:
        section.error(
            key,
            f"{sockets} sockets x {value.cores or 1} cores x {value.threads or 1} threads is "
            f"{product} vCPUs, but cpus = {cpus}: bhyve refuses a topology that does not match",
        )
        return None
    return value


def console(section: Section, key: str, value: str) -> str | None:
    if value == "nmdm":
        return value
    problem = path_problem(value)
    if problem is not None:
        section.error(key, f'expected "nmdm" or a device path; {show(value)} {problem}')
        return None
    return value


def passthru(section: Section, key: str, items: list[Any]) -> tuple[str, ...]:
    seen: dict[str, int] = {}
    out = []
    for index, item in enumerate(items):
        path = f"{section.path(key)}[{index}]"
        if not isinstance(item, str):
            section.reader.error(path, f'expected "bus/slot/function", got {describe(item)}')
            continue
        match = _PASSTHRU_RE.fullmatch(item)
        if match is None:
            section.reader.error(
                path, f'expected "bus/slot/function" like "2/0/0", got {show(item)}'
            )
            continue
        bus, slot, func = (int(g) for g in match.groups())
        if bus > 255 or slot > 31 or func > 7:
            section.reader.error(
                path, f"{show(item)} is out of range: bus 0-255, slot 0-31, function 0-7"
            )
            continue
        canonical = f"{bus}/{slot}/{func}"
        if canonical in seen:
            section.reader.error(path, f"same device as {key}[{seen[canonical]}]")
            continue
        seen[canonical] = index
        out.append(canonical)
    return tuple(out)


def loader_variable_name(name: str) -> str | None:
    # The argv element is `NAME=VALUE`, so the name alone decides whether it could be
    # mistaken for an option.
    if _ENV_KEY_RE.fullmatch(name) is None:
        return "a loader variable name is a letter or `_`, then letters, digits, `_` or `.`"
    return None


def argv_text(section: Section, key: str, value: str) -> str | None:
    problem = argv_text_problem(value)
    if problem is not None:
        section.error(key, problem)
        return None
    return value


def tap(section: Section, key: str, value: str) -> str | None:
    if TAP_RE.fullmatch(value) is None:
        section.error(key, f'expected a tap interface name like "tap0", got {show(value)}')
        return None
    return value


def interface(section: Section, key: str, value: str) -> str | None:
    if IFNAME_RE.fullmatch(value) is None:
        section.error(key, f"expected {IFNAME_RULE}, got {show(value)}")
        return None
    return value


def mac(section: Section, key: str, value: str) -> str | None:
    if _MAC_RE.fullmatch(value) is None:
        section.error(key, f'expected a MAC address like "58:9c:fc:00:00:01", got {show(value)}')
        return None
    value = value.lower()
    if int(value[:2], 16) & 1:
        section.error(key, f"{show(value)} is a multicast address; a NIC needs a unicast one")
        return None
    if value == "00:00:00:00:00:00":
        section.error(key, "the all-zero address is not a usable NIC address")
        return None
    return value


def nics(section: Section, key: str, entries: list[Entry]) -> tuple[Nic, ...]:
    """The valid NICs; a tap or MAC address given twice is refused (the later one)."""
    out: list[Nic] = []
    taps: dict[str, str] = {}
    macs: dict[str, str] = {}
    for entry in entries:
        nic: Nic = entry.value
        if not entry.ok:
            continue
        if nic.tap is not None and nic.tap in taps:
            section.reader.error(f"{entry.path}.tap", f"same tap as {taps[nic.tap]}")
            continue
        if nic.mac is not None and nic.mac in macs:
            section.reader.error(f"{entry.path}.mac", f"same MAC address as {macs[nic.mac]}")
            continue
        if nic.tap is not None:
            taps[nic.tap] = entry.path
        if nic.mac is not None:
            macs[nic.mac] = entry.path
        out.append(nic)
    return tuple(out)


def listen(section: Section, key: str, value: str) -> str | None:
    host, sep, port = value.rpartition(":")
    problem = None
    if not sep or not host:
        problem = 'expected "host:port" like "127.0.0.1:5900"'
    elif re.fullmatch(r"[0-9.]+", host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            problem = f"{show(host)} is not an IPv4 address"
    elif _HOSTNAME_RE.fullmatch(host) is None or ".." in host:
        problem = f"{show(host)} is not an IPv4 address or a host name"
    number = port.isascii() and port.isdigit() and len(port) <= 5
    if problem is None and not (number and 1 <= int(port) <= 65535):
        problem = f"the port must be a number from 1 to 65535, got {show(port)}"
    if problem is not None:
        section.error(key, problem)
        return None
    return value


def grub_root(section: Section, key: str, value: str) -> str | None:
    problem = word_problem(value)
    if not value:
        problem = 'expected a grub device like "hd0,msdos1"'
    elif problem is None and value.startswith("-"):
        problem = "must not start with `-`: grub-bhyve would read it as an option"
    if problem is not None:
        section.error(key, problem)
        return None
    return value


def grub_word(section: Section, key: str, value: str) -> str | None:
    """A path or file name grub-bhyve takes as one argument (`-d DIR`, `-g FILE`)."""
    problem = word_problem(value)
    if not value:
        problem = "must not be empty"
    elif problem is None and value.startswith("-"):
        problem = "must not start with `-`: grub-bhyve would read it as an option"
    if problem is not None:
        section.error(key, problem)
    return None if problem is not None else value


def uefi_vars_file(section: Section, values: dict[str, Any]) -> None:
    """`vars_file` says where `vars` keeps the variables: alone it would keep none."""
    if values.get("vars_file") is not None and not values.get("vars", False):
        section.error("vars_file", "only valid with vars = true (it says where they are kept)")


def grub_config(section: Section, key: str, value: str) -> str | None:
    problem = file_text_problem(value)
    if problem is not None:
        section.error(key, problem)
        return None
    return value


def device_count(section: Section, values: dict[str, Any]) -> None:
    """Disks, NICs and passthru devices must fit vmrun.sh's PCI slots; a cloud-init seed CD
    takes the last of them (bhyve.SEED_CD_SLOT)."""
    data = section.data
    count = sum(len(data[k]) for k in ("disk", "nic", "passthru") if isinstance(data.get(k), list))
    seed = "cloud_init" in data
    if count + seed > PCI_CAPACITY:
        what = (
            "disks, NICs, passthru and the cloud-init seed CD"
            if seed
            else ("disks, NICs and passthru")
        )
        section.error(
            "disk",
            f"{count + seed} devices ({what}) do not fit the {PCI_CAPACITY} "
            f"PCI slots {FIRST_PCI_SLOT}-{LAST_PCI_SLOT}",
        )


def host_name(section: Section, key: str, value: str) -> str | None:
    problem = host_name_problem(value)
    if problem is not None:
        section.error(key, f"{problem}, got {show(value)}")
        return None
    return value.lower()


def shared_storage(section: Section, key: str, value: bool) -> bool | None:
    """The lock lives beside the first disk, so that disk must be a file in a directory both
    hosts see: not a ZFS volume, not a device (devfs holds no lock files)."""
    disks = section.data.get("disk")
    first = disks[0] if isinstance(disks, list) and disks else None
    if not value or not isinstance(first, dict):
        return value  # a missing or malformed [[disk]] is reported by its own key
    path = first.get("path")
    if not isinstance(path, str):
        section.error(
            key,
            "needs the first [[disk]] to be an image file (`path`), not a zvol: "
            "the lock file lives beside it on the shared file system",
        )
        return None
    if path.startswith("/dev/"):
        section.error(
            key,
            f"the first disk {show(path)} is a device: the lock file must live "
            "beside an image file on the shared file system",
        )
        return None
    return value
