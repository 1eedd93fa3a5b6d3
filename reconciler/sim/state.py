"""The simulated host's persistent state: one marshal file under `ROOT/.sim`, guarded by flock.

Owns the state schema, a fresh host's defaults (the kernel's compiled-in devices, loadable
modules, sysctl OIDs, the release), locking, the command log, the fault table and the mapping
of host paths into the sim root. It must stay cheap to import: every simulated tool loads it at
start-up, so it imports nothing beyond the interpreter's core.
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
        description: str | None  # argv text: undecodable bytes kept as surrogateescape
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
        type: Literal["filesystem", "volume", "snapshot"]
        volsize: int
        volmode: str
        volblocksize: int
        origin: str | None  # clones: the snapshot they came from

    class Vm(TypedDict):
        """vmm.ko's view of one VM (sys/amd64/vmm/vmm.c struct vm), as the sim needs it."""

        memsize: int  # 0 until vm_setup_memory; system memory persists across vm_reinit
        active: bool  # vm_activate_cpu ran (a bhyve started its vCPUs)
        suspend: int  # vm->suspend: 0, or the vm_suspend_how bhyvectl set

    class Guest(TypedDict):
        boots: int
        loader_exit: int | None

    class Fault(TypedDict):
        pattern: str
        status: int
        stderr: str
        count: int | None

    class LoaderFault(TypedDict):
        call: str  # "vm_create" or "vm_setup_memory"
        count: int

    class State(TypedDict):
        interfaces: dict[str, Iface]
        kld_files: list[KldFile]
        next_kld_id: int
        next_mod_id: int
        sysctl: dict[str, str]
        datasets: dict[str, Dataset]
        guests: dict[str, Guest]
        vms: dict[str, Vm]
        faults: list[Fault]
        loader_fault: LoaderFault | None
        zvol_delay: float | None  # None: nodes appear at once; inf: held until released
        pending_zvols: list[str]
        next_ifindex: int


SIM_DIR = ".sim"
UNLOGGED_ENV = "BHYVE_SIM_UNLOGGED"
ROOT_ENV = "BHYVE_SIM_ROOT"
FIRMWARE_DIR = "/usr/local/share/uefi-firmware"
DEFAULT_RELEASE = "14.1-RELEASE"
# A large host by default, so scale runs (bench: 1000 guests of 512M) fit; a test that wants
# memory pressure sets hw.physmem (setup(physmem=...), SimulatedHost.set_physmem).
DEFAULT_PHYSMEM = 1 << 40

# Always in the kernel the sim models (amd64 GENERIC).
BASE_MODULES = (
    "elf64",
    "shell",
    "pseudofs",
    "procfs",
    "ether",
    "if_vlan",
    "if_lagg",
    "g_disk",
    "pci/ahci",
    "acpi/acpi_timer",
    "nexus/acpi",
)

# Devices a kernel config may compile in or leave to a module, with the modules each declares:
# sys/net/if_tuntap.c declares if_tuntap and, for compatibility, if_tun and if_tap.
OPTIONAL_DEVICES: dict[str, tuple[str, ...]] = {
    "if_tuntap": ("if_tuntap", "if_tun", "if_tap"),
    "if_bridge": ("if_bridge", "bridgestp"),
    "nmdm": ("nmdm",),
}
# amd64 GENERIC (sys/amd64/conf/GENERIC) has `device tuntap` since 13.0, but neither if_bridge
# nor nmdm: those come from modules (ifconfig loads if_bridge itself, vm-bhyve kldloads nmdm).
GENERIC_DEVICES = ("if_tuntap",)

# Loadable files and the modules each holds; dependencies are loaded first, as kldload does.
KLD_CATALOGUE: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "zfs.ko": (("zfsctrl", "zfs"), ()),
    "vmm.ko": (("vmm",), ()),
    "nmdm.ko": (("nmdm",), ()),
    "if_tuntap.ko": (OPTIONAL_DEVICES["if_tuntap"], ()),
    "bridgestp.ko": (("bridgestp",), ()),
    "if_bridge.ko": (("if_bridge",), ("bridgestp.ko",)),
}

# OID -> (default, writable); every value is kept as text, integers are checked on write.
SYSCTL_DEFAULTS: dict[str, tuple[str, bool]] = {
    "kern.ostype": ("FreeBSD", False),
    "kern.osrelease": (DEFAULT_RELEASE, False),
    "hw.machine": ("amd64", False),
    "hw.ncpu": ("8", False),
    "hw.physmem": (str(DEFAULT_PHYSMEM), False),
}
# sys/net/if_tuntap.c: SYSCTL_INT(_net_link_tap, ...) exist only while if_tuntap is in the
# kernel (reference §4.6, §8.7).
TAP_SYSCTLS: dict[str, tuple[str, bool]] = {
    "net.link.tap.up_on_open": ("0", True),
    "net.link.tap.devfs_cloning": ("1", True),
    "net.link.tap.user_open": ("0", True),
}


def sysctl_spec(oid: str) -> tuple[str, bool] | None:
    return SYSCTL_DEFAULTS.get(oid) or TAP_SYSCTLS.get(oid)


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


def release_major(state: State) -> int:
    """13, 14, 15, ... from kern.osrelease, which release-dependent behaviours follow."""
    head = state["sysctl"]["kern.osrelease"].split(".", 1)[0].split("-", 1)[0]
    return int(head) if head.isdigit() else 14


def default_state(
    physical: tuple[str, ...],
    release: str = DEFAULT_RELEASE,
    compiled_in: tuple[str, ...] = GENERIC_DEVICES,
    physmem: int = DEFAULT_PHYSMEM,
) -> State:
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
    modules = list(BASE_MODULES)
    for device in compiled_in:
        modules += OPTIONAL_DEVICES[device]
    sysctl = {oid: value for oid, (value, _) in SYSCTL_DEFAULTS.items()}
    sysctl["kern.osrelease"] = release
    sysctl["hw.physmem"] = str(physmem)
    state: State = {
        "interfaces": interfaces,
        "kld_files": [
            {
                "id": 1,
                "name": "kernel",
                "path": "/boot/kernel/kernel",
                "modules": [(i, m) for i, m in enumerate(modules, start=1)],
            }
        ],
        "next_kld_id": 2,
        "next_mod_id": len(modules) + 1,
        "sysctl": sysctl,
        "datasets": {
            "zroot": {
                "type": "filesystem",
                "volsize": 0,
                "volmode": "default",
                "volblocksize": 0,
                "origin": None,
            }
        },
        "guests": {},
        "vms": {},
        "faults": [],
        "loader_fault": None,
        "zvol_delay": None,
        "pending_zvols": [],
        "next_ifindex": len(interfaces) + 1,
    }
    sync_module_sysctls(state)
    kld_load(state, "zfs.ko")
    return state


def upgrade_state(state: State) -> None:
    """Give a state written by an earlier sim the keys this one reads (for --simulate roots)."""
    defaults = default_state(())
    for key, value in defaults.items():
        state.setdefault(key, value)  # type: ignore[misc]
    for oid in ("kern.osrelease", "hw.physmem"):
        state["sysctl"].setdefault(oid, defaults["sysctl"][oid])
    for dataset in state["datasets"].values():
        dataset.setdefault("volblocksize", 16384 if dataset["type"] != "filesystem" else 0)
        dataset.setdefault("origin", None)


def sync_module_sysctls(state: State) -> None:
    """Add or drop the OIDs a module declares as it enters or leaves the kernel."""
    present = "if_tuntap" in modules_present(state)
    for oid, (value, _) in TAP_SYSCTLS.items():
        if present:
            state["sysctl"].setdefault(oid, value)
        else:
            state["sysctl"].pop(oid, None)


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
    sync_module_sysctls(state)
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
        elif ch < " " or ch == "\x7f" or "\ud800" <= ch <= "\udfff":
            # Surrogates stand for argv bytes that are not UTF-8; escaped, the log stays UTF-8
            # and json.loads gives the same str back.
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
        os.write(fd, line.encode("utf-8"))
    finally:
        os.close(fd)
