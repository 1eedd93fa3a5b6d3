"""The guest model: frozen values for one `conf.d/NAME.toml` file, and nothing else.

Pure data with the few properties derived from it. Reading files lives in `guestfile`
(with the description of every key in `guestkeys`), conflicts between files in `conflicts`.
The defaults written here are the only ones: the parser and the docs read them from these fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal, get_args

Loader = Literal["bhyveload", "grub", "uefi"]
DesiredState = Literal["running", "stopped"]
RestartPolicy = Literal["on-failure", "always", "never"]
OnChange = Literal["restart", "next-boot"]
DiskEmulation = Literal["virtio-blk", "ahci-hd", "nvme", "ahci-cd"]
NicEmulation = Literal["virtio-net", "e1000"]
Layout = Literal["vmrun", "vm-bhyve"]

STATES: tuple[DesiredState, ...] = get_args(DesiredState)
LOADERS: tuple[Loader, ...] = get_args(Loader)
RESTART_POLICIES: tuple[RestartPolicy, ...] = get_args(RestartPolicy)
ON_CHANGES: tuple[OnChange, ...] = get_args(OnChange)
DISK_EMULATIONS: tuple[DiskEmulation, ...] = get_args(DiskEmulation)
NIC_EMULATIONS: tuple[NicEmulation, ...] = get_args(NicEmulation)
LAYOUTS: tuple[Layout, ...] = get_args(Layout)

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
    vars_file: str | None = None  # with `vars`: this file, not a copy in the state dir


@dataclass(frozen=True)
class Graphics:
    """`[graphics]`: the UEFI framebuffer (VNC). Only valid with `loader = "uefi"`."""

    listen: str = "127.0.0.1:5900"
    width: int = 1024
    height: int = 768
    wait: bool = False
    wait_install: bool = False  # `wait` while the install media boots
    tablet: bool = False


@dataclass(frozen=True)
class Grub:
    root: str | None = None  # None: `cd0` while installing, else `hd0,msdos1`
    config: str | None = None  # grub commands written to grub.cfg


@dataclass(frozen=True)
class Topology:
    """`[topology]`: how the vCPUs look to the guest (bhyve `-c N,sockets=S,cores=C,threads=T`).
    Unset parts are left to bhyve: sockets = the vCPU count, cores and threads 1."""

    sockets: int | None = None
    cores: int | None = None
    threads: int | None = None


@dataclass(frozen=True)
class VmBhyve:
    """`[vm_bhyve]`: vm-bhyve's own settings for `layout = "vm-bhyve"`, read as its vm-run reads
    them, so a guest it installed keeps every PCI slot and loader argument."""

    start_slot: int = 4
    install_slot: int = 3
    ahci_device_limit: int = 1
    grub_run_dir: str | None = None
    grub_run_file: str | None = None


@dataclass(frozen=True)
class Lifecycle:
    """How the reconciler runs a guest, as opposed to what boots: changing these never needs
    a restart (a new `host` moves the guest: it stops here, as if its file were removed). In
    the file they are top-level keys (`state = "stopped"`)."""

    state: DesiredState = "running"
    order: int = 0
    restart: RestartPolicy = "on-failure"
    on_change: OnChange = "restart"
    stop_timeout: float | None = None  # seconds; None = the daemon config's
    host: str | None = None  # the host that runs it (placement); None: see the daemon config
    shared_storage: bool = False  # its disks are shared: a lock beside the first one


@dataclass(frozen=True)
class GuestSpec:
    """A validated guest. `source` is the file it came from (for messages)."""

    name: str
    source: str = ""
    cpus: int = 1
    memory: str = DEFAULT_MEMORY  # canonical size text as bhyve takes it, e.g. "1024M"
    topology: Topology | None = None
    uuid: str | None = None  # bhyve -U; None: bhyve derives one from the host and VM names
    loader: Loader = "bhyveload"
    console: str = "nmdm"  # "nmdm" or a device path; see console_device()
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
    layout: Layout = "vmrun"
    vm_bhyve: VmBhyve = field(default_factory=VmBhyve)
    lifecycle: Lifecycle = field(default_factory=Lifecycle)

    @property
    def boot_key(self) -> GuestSpec:
        """What boots: two specs with equal keys boot the same VM, so an edit needs a restart
        exactly when `old.boot_key != new.boot_key`."""
        return replace(self, source="", lifecycle=Lifecycle())

    @property
    def cpu_argument(self) -> str:
        """bhyve's `-c`: the vCPU count, then each topology part that is set."""
        parts = [str(self.cpus)]
        if self.topology is not None:
            for part in ("sockets", "cores", "threads"):
                value = getattr(self.topology, part)
                if value is not None:
                    parts.append(f"{part}={value}")
        return ",".join(parts)

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
