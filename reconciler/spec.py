"""The guest model: frozen values for one `conf.d/NAME.toml` file, and nothing else.

Pure data with the few properties derived from it. Reading files lives in `guestfile`
(with the description of every key in `guestkeys`), conflicts between files in `conflicts`.
The defaults written here are the only ones: the parser and the docs read them from these fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal, get_args

from reconciler.cloudinit_rules import is_path

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
    size: int | None = None  # bytes; created when missing, grown when larger, never shrunk
    emulation: DiskEmulation = "virtio-blk"
    options: tuple[str, ...] = ()
    # What a missing disk is made from: a raw image file (a `path` disk) or a ZFS snapshot
    # `pool/dataset@snap` (a `zvol` disk, cloned). Read only while the disk does not exist.
    source: str | None = None

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
class StaticNetwork:
    """`[cloud_init.network]`: one static address on the guest's first NIC."""

    address: str  # "192.0.2.21/24", as ipaddress.ip_interface prints it
    gateway: str | None = None
    nameservers: tuple[str, ...] = ()


@dataclass(frozen=True)
class CloudInit:
    """`[cloud_init]`: what the guest's NoCloud seed says. `user_data` and `network_config` are
    inline text or the absolute path of a file; the `*_content` fields hold what the edge read
    from such a file (None when inline, absent or not read yet), so a seed is a function of
    the accepted spec alone."""

    ssh_authorized_keys: tuple[str, ...] = ()
    user_data: str | None = None
    hostname: str | None = None  # None: the guest's name
    network: StaticNetwork | None = None
    network_config: str | None = None
    user_data_content: str | None = None
    network_config_content: str | None = None

    @property
    def user_data_path(self) -> str | None:
        """The file the edge must read, or None when inline or absent."""
        return self.user_data if self.user_data is not None and is_path(self.user_data) else None

    @property
    def network_config_path(self) -> str | None:
        nc = self.network_config
        return nc if nc is not None and is_path(nc) else None

    def hostname_for(self, guest_name: str) -> str:
        return self.hostname if self.hostname is not None else guest_name

    def inlined(self) -> CloudInit:
        """The same seed with each file that was read given inline: what the spec says,
        independent of the files (its copies in state_dir are written so, and what boots is
        compared so: a path and the text read from it boot the same seed)."""
        if self.user_data_content is None and self.network_config_content is None:
            return self
        return replace(
            self,
            user_data=self.user_data_content or self.user_data,
            network_config=self.network_config_content or self.network_config,
            user_data_content=None,
            network_config_content=None,
        )


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
    cloud_init: CloudInit | None = None

    @property
    def boot_key(self) -> GuestSpec:
        """What boots: two specs with equal keys boot the same VM, so an edit needs a restart
        exactly when `old.boot_key != new.boot_key`. A disk's `source` is not part of it: an
        existing disk is never made again from its image. A cloud-init file is, by its text."""
        disks = tuple(replace(d, source=None) if d.source else d for d in self.disks)
        ci = self.cloud_init.inlined() if self.cloud_init is not None else None
        return replace(self, source="", lifecycle=Lifecycle(), disks=disks, cloud_init=ci)

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
