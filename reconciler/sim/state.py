"""The simulated host's persistent state: one marshal file under `ROOT/.sim`, guarded by flock.

Owns the state schema, its default (a fresh FreeBSD 14 host), locking, the command log, the
fault table and the mapping of host paths into the sim root. It must stay cheap to import:
every simulated tool loads it at start-up, so it imports nothing beyond the interpreter's core.
"""

from __future__ import annotations

import fcntl
import marshal
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Literal, TypedDict

    IfaceKind = Literal["loopback", "physical", "tap", "bridge"]

    class Iface(TypedDict):
        kind: IfaceKind
        up: bool
        members: list[str]  # bridges: in the order they were added
        description: str | None
        groups: list[str]  # groups beyond the cloner's own
        mtu: int
        index: int
        opened_by: str | None  # taps: guest whose bhyve opened it last

    class KldFile(TypedDict):
        id: int
        name: str
        path: str
        modules: list[tuple[int, str]]

    class Dataset(TypedDict):
        type: Literal["filesystem", "volume"]
        volsize: int
        volmode: str

    class Guest(TypedDict):
        boots: int
        loader_exit: int | None

    class Fault(TypedDict):
        pattern: str
        status: int
        stderr: str
        count: int | None

    class State(TypedDict):
        interfaces: dict[str, Iface]
        kld_files: list[KldFile]
        next_kld_id: int
        next_mod_id: int
        sysctl: dict[str, str]
        datasets: dict[str, Dataset]
        guests: dict[str, Guest]
        faults: list[Fault]
        next_ifindex: int


SIM_DIR = ".sim"
UNLOGGED_ENV = "BHYVE_SIM_UNLOGGED"
ROOT_ENV = "BHYVE_SIM_ROOT"
FIRMWARE_DIR = "/usr/local/share/uefi-firmware"

# Modules GENERIC compiles in: tuntap is there since 13.0, so `net.link.tap.*` always exists.
KERNEL_MODULES = (
    "elf64",
    "shell",
    "pseudofs",
    "procfs",
    "ether",
    "if_tuntap",
    "if_tun",
    "if_tap",
    "if_vlan",
    "if_lagg",
    "g_disk",
    "pci/ahci",
    "acpi/acpi_timer",
    "nexus/acpi",
)

# Loadable files and the modules each holds; dependencies are loaded first, as kldload does.
KLD_CATALOGUE: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "zfs.ko": (("zfsctrl", "zfs"), ()),
    "vmm.ko": (("vmm",), ()),
    "nmdm.ko": (("nmdm",), ()),
    "bridgestp.ko": (("bridgestp",), ()),
    "if_bridge.ko": (("if_bridge",), ("bridgestp.ko",)),
}

# OID -> writable; every value is kept as text, integers are checked on write.
SYSCTL_DEFAULTS: dict[str, tuple[str, bool]] = {
    "kern.ostype": ("FreeBSD", False),
    "kern.osrelease": ("14.1-RELEASE", False),
    "hw.machine": ("amd64", False),
    "hw.ncpu": ("8", False),
    "net.link.tap.up_on_open": ("0", True),
    "net.link.tap.devfs_cloning": ("1", True),
    "net.link.tap.user_open": ("0", True),
}


def sim_dir(root: str) -> str:
    return os.path.join(root, SIM_DIR)


def guest_dir(root: str, name: str) -> str:
    return os.path.join(root, SIM_DIR, "guests", name)


def vmm_dir(root: str) -> str:
    return os.path.join(root, "dev", "vmm")


def host_path(root: str, path: str) -> str:
    """Where a FreeBSD path named in an argv lives inside the sim root."""
    absolute = os.path.abspath(path)
    if absolute == root or absolute.startswith(root.rstrip("/") + "/"):
        return absolute
    return root.rstrip("/") + absolute


def default_state(physical: tuple[str, ...]) -> State:
    interfaces: dict[str, Iface] = {}
    for index, name in enumerate((*physical[:1], "lo0", *physical[1:]), start=1):
        kind: IfaceKind = "loopback" if name == "lo0" else "physical"
        interfaces[name] = {
            "kind": kind,
            "up": True,
            "members": [],
            "description": None,
            "groups": [],
            "mtu": 16384 if kind == "loopback" else 1500,
            "index": index,
            "opened_by": None,
        }
    state: State = {
        "interfaces": interfaces,
        "kld_files": [
            {
                "id": 1,
                "name": "kernel",
                "path": "/boot/kernel/kernel",
                "modules": [(i, m) for i, m in enumerate(KERNEL_MODULES, start=1)],
            }
        ],
        "next_kld_id": 2,
        "next_mod_id": len(KERNEL_MODULES) + 1,
        "sysctl": {oid: value for oid, (value, _) in SYSCTL_DEFAULTS.items()},
        "datasets": {"zroot": {"type": "filesystem", "volsize": 0, "volmode": "default"}},
        "guests": {},
        "faults": [],
        "next_ifindex": len(interfaces) + 1,
    }
    kld_load(state, "zfs.ko")
    return state


def kld_load(state: State, filename: str) -> list[str]:
    """Link `filename` and its dependencies; returns the files newly loaded."""
    loaded = {f["name"] for f in state["kld_files"]}
    if filename in loaded:
        return []
    modules, depends = KLD_CATALOGUE[filename]
    done: list[str] = []
    for dependency in depends:
        done += kld_load(state, dependency)
    entry: KldFile = {
        "id": state["next_kld_id"],
        "name": filename,
        "path": "/boot/kernel/" + filename,
        "modules": [],
    }
    for module in modules:
        entry["modules"].append((state["next_mod_id"], module))
        state["next_mod_id"] += 1
    state["next_kld_id"] += 1
    state["kld_files"].append(entry)
    return [*done, filename]


def modules_present(state: State) -> set[str]:
    return {m for f in state["kld_files"] for _, m in f["modules"]}


def new_guest() -> Guest:
    return {"boots": 0, "loader_exit": None}


class Store:
    """The state of one sim root, held under an exclusive flock for as long as it is open."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.dir = sim_dir(root)
        self.dirty = False
        self._lock_fd = -1
        self.state: State

    def __enter__(self) -> Store:
        self._lock_fd = os.open(os.path.join(self.dir, "lock"), os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        with open(os.path.join(self.dir, "state"), "rb") as f:
            self.state = marshal.load(f)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self.dirty and exc[0] is None:
                self.save()
        finally:
            os.close(self._lock_fd)

    def save(self) -> None:
        write_state(self.dir, self.state)
        self.dirty = False


def write_state(directory: str, state: State) -> None:
    # Readers hold the lock, but a rename keeps a crashed writer from leaving half a file.
    tmp = os.path.join(directory, "state.tmp")
    with open(tmp, "wb") as f:
        marshal.dump(state, f)  # type: ignore[arg-type]  # a TypedDict of plain values
    os.replace(tmp, os.path.join(directory, "state"))


def read_state(root: str) -> State:
    with Store(root) as store:
        return store.state


def match_fault(store: Store, argv: list[str]) -> Fault | None:
    """The first injected fault whose pattern matches `argv`; a counted one is used up."""
    faults = store.state["faults"]
    if not faults:
        return None
    from fnmatch import fnmatchcase

    line = " ".join(argv)
    for fault in faults:
        if fnmatchcase(line, fault["pattern"]):
            if fault["count"] is not None:
                fault["count"] -= 1
                if fault["count"] <= 0:
                    faults.remove(fault)
                store.dirty = True
            return fault
    return None


def _json_str(text: str) -> str:
    out = ['"']
    for ch in text:
        if ch == '"' or ch == "\\":
            out.append("\\" + ch)
        elif ch < " " or ch == "\x7f":
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def log_command(root: str, argv: list[str], status: int | None) -> None:
    """Append one JSON line; a single O_APPEND write keeps concurrent tools' lines whole."""
    if os.environ.get(UNLOGGED_ENV):
        return
    status_text = "null" if status is None else str(status)
    line = (
        '{"argv": [' + ", ".join(_json_str(a) for a in argv) + '], "status": ' + status_text + "}\n"
    )
    fd = os.open(
        os.path.join(sim_dir(root), "commands.log"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644
    )
    try:
        os.write(fd, line.encode("utf-8", "surrogateescape"))
    finally:
        os.close(fd)


def bhyve_pid(root: str, name: str) -> int | None:
    """The pid of the live simulated bhyve of guest `name`, if one runs."""
    try:
        with open(os.path.join(guest_dir(root, name), "pid")) as f:
            pid = int(f.read().strip() or "0")
    except (OSError, ValueError):
        return None
    return pid if pid > 0 and _is_sim_bhyve(pid) else None


def _is_sim_bhyve(pid: int) -> bool:
    # A zombie (killed, not yet reaped) has an empty cmdline: its tap is already closed.
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"bhyve.sh" in f.read()
    except FileNotFoundError:
        if os.path.isdir("/proc/self"):
            return False
    except OSError:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class UsageError(Exception):
    """A bad option; the tool prints its usage line and exits 1 (64 for some tools)."""


def getopt(args: list[str], spec: str) -> tuple[list[tuple[str, str]], list[str]]:
    """POSIX getopt: `spec` as in C (letters, ':' after those taking a value)."""
    options: list[tuple[str, str]] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            return options, args[i + 1 :]
        if not arg.startswith("-") or arg == "-":
            break
        j = 1
        while j < len(arg):
            letter = arg[j]
            where = spec.find(letter)
            if where < 0 or letter == ":":
                raise UsageError(f"illegal option -- {letter}")
            if spec[where + 1 : where + 2] == ":":
                value = arg[j + 1 :]
                if not value:
                    i += 1
                    if i >= len(args):
                        raise UsageError(f"option requires an argument -- {letter}")
                    value = args[i]
                options.append((letter, value))
                break
            options.append((letter, ""))
            j += 1
        i += 1
    return options, args[i:]
