"""The FreeBSD driver: observe the host with a fixed number of commands, apply actions.

`FreeBSDHost` is the only code that turns actions into host changes: through the `Runner` for
commands, and with plain file operations (under `root`) for disk images and copied files. The
same code runs on FreeBSD and against the simulated host, which differs only in `PATH` and
`root`.
"""

from __future__ import annotations

import os
import shutil
import stat
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TypeVar, cast

import structlog

from reconciler.actions import (
    Action,
    AddMember,
    CopyFile,
    CreateDiskFile,
    CreateInterface,
    CreateZvol,
    DestroyInterface,
    DestroyVM,
    Forget,
    LoadModule,
    RemoveMember,
)
from reconciler.bhyve import BOOT_PROBE_BYTES, is_bootable
from reconciler.errors import HostCommandError
from reconciler.execute import ActionDeferred
from reconciler.facts import (
    DiskFile,
    HostFacts,
    Interface,
    Observation,
    parse_ifconfig,
    parse_kldstat,
    parse_sysctl,
    parse_zfs_volumes,
)
from reconciler.host.copier import ImageCopier
from reconciler.host.diskprep import (
    ImageProbe,
    build_seed,
    copy_image,
    grow_file,
    observe_clone_sources,
    read_seed_ids,
    sweep_temporaries,
)
from reconciler.host.runner import Result, Runner, command_error
from reconciler.imageactions import BuildSeed, CloneZvol, CopyImage, GrowDisk
from reconciler.ledger import Ledger
from reconciler.plan import UP_ON_OPEN
from reconciler.spec import GuestSpec

OBSERVE_KLDSTAT = ("kldstat", "-v")
OBSERVE_SYSCTL = ("sysctl", UP_ON_OPEN)
OBSERVE_IFCONFIG = ("ifconfig", "-a")
OBSERVE_ZFS = ("zfs", "list", "-H", "-p", "-t", "volume", "-o", "name,volsize")

# FreeBSD's answers that mean "already so": the goal holds, and this pass changed nothing.
_ALREADY: dict[type[Action], tuple[str, ...]] = {
    LoadModule: ("module already loaded or in kernel",),
    CreateInterface: (
        # sbin/ifconfig/ifconfig.c main() (13.x, 14.x, 15): the name exists before any ioctl.
        "already exists",  # ifconfig: interface tap0 already exists
        # ifclone.c ifclonecreate(): err(1, "SIOCIFCREATE2") when the ioctl itself meets
        # EEXIST, the name created between main()'s look-up and the ioctl; older releases
        # printed this for every existing name.
        "SIOCIFCREATE2: File exists",
    ),
    AddMember: ("File exists",),  # ifconfig: BRDGADD tap0: File exists
    RemoveMember: ("No such file or directory",),  # ifconfig: BRDGDEL tap0: No such file ...
    DestroyInterface: ("does not exist",),
    CreateZvol: ("dataset already exists",),
    CloneZvol: ("dataset already exists",),
    DestroyVM: ("No such file or directory",),  # vm_open: NAME could not be opened: ...
}


_MISSING = DiskFile(exists=False)


_T = TypeVar("_T")
_NODE_POLL = 0.05  # seconds between looks for a new zvol's device node

log = structlog.get_logger("reconciler.host")


class FreeBSDHost:
    """`zvol_node_wait`: how long `apply` waits for a new zvol's /dev/zvol node, which GEOM
    and devfs make asynchronously after `zfs create` returns (reference §8); `sleep` and
    `clock` time that wait."""

    def __init__(
        self,
        runner: Runner,
        *,
        root: Path = Path("/"),
        vmm_dir: Path = Path("/dev/vmm"),
        zvol_node_wait: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.runner = runner
        self.root = root
        self.vmm_dir = vmm_dir
        self.zvol_node_wait = zvol_node_wait
        self._sleep = sleep
        self._clock = clock
        self._root_prefix = str(root).rstrip("/")
        self._disk_cache: dict[str, DiskFile] = {}
        self._images = ImageProbe()
        # The daemon's background copies; None: `apply` copies while it waits.
        self.copier: ImageCopier | None = None
        self._parse_cache: dict[Callable[[bytes], object], tuple[bytes, object]] = {}

    def host_path(self, path: str | Path) -> Path:
        """Where a host path (a disk, an ISO, /dev/vmm) is for this process."""
        return self.root / str(path).lstrip("/")

    # -- observing -------------------------------------------------------------------------

    def observe(
        self,
        desired: Mapping[str, GuestSpec],
        ledger: Ledger,
        state_files: Iterable[str] = (),
        running: frozenset[str] = frozenset(),
        seeds: Mapping[str, tuple[str, str]] | None = None,
    ) -> HostFacts:
        """One snapshot: kldstat, sysctl, ifconfig, and zfs only when a spec or the ledger
        holds a zvol; then stats and a listing of vmm_dir, which run no command.

        Each observation may fail alone: its field is then None (a disk whose stat failed is
        absent) and `unobserved` says why; the others are still taken, so the planner blocks
        only what needs the missing fact (DESIGN.md rule 8). A failed sysctl read is no
        failure: FreeBSD says `unknown oid` until if_tap is loaded, which means "not set".

        `state_files` are the daemon's own per-guest files (UEFI vars copies) the plan wants;
        the ledger's are always checked. Like CopyFile, they are daemon paths, not under root.
        The disks of `running` guests are not looked at: nothing creates or grows a disk
        under a running guest. For the others, a missing disk's image is read (its first and
        last bytes), the snapshots missing zvols are cloned from are listed (one `zfs list`,
        only then), and `seeds` (guest -> its seed image and stamp, daemon paths) says whose
        cloud-init seed to look at; copies in flight come from `copier`.
        """
        unobserved: dict[Observation, str] = {}
        modules: frozenset[str] | None = None
        try:
            modules = self._parsed(parse_kldstat, self._must(OBSERVE_KLDSTAT).stdout)
        except HostCommandError as exc:
            unobserved["modules"] = str(exc)
        sysctl = self.runner.run(OBSERVE_SYSCTL)
        sysctls = parse_sysctl(sysctl.stdout) if sysctl.ok else {}
        interfaces: dict[str, Interface] | None = None
        try:
            interfaces = self.observe_interfaces()
        except HostCommandError as exc:
            unobserved["interfaces"] = str(exc)
        uses_zfs = any(d.zvol for g in desired.values() for d in g.disks) or any(
            p.startswith("/dev/zvol/") for p in ledger.disks
        )
        zvols: dict[str, int] | None = None
        try:
            zvols = (
                self._parsed(parse_zfs_volumes, self._must(OBSERVE_ZFS).stdout)
                if uses_zfs
                else None
            )
        except (HostCommandError, ValueError) as exc:  # ValueError: sizes not in bytes
            unobserved["zvols"] = str(exc)
        idle = [g for g in desired.values() if g.name not in running]
        disks = self._observe_disks(idle, unobserved)
        images = {
            d.source: self._images.look(d.source, self.host_path(d.source))
            for g in idle
            for d in g.disks
            if d.path and d.source and not (d.path in disks and disks[d.path].exists)
        }
        snapshots = observe_clone_sources(self.runner, idle, zvols, unobserved)
        vms: frozenset[str] | None = None
        try:
            vms = self.list_vms()
        except OSError as exc:
            unobserved["vms"] = f"{self.vmm_dir}: {exc.strerror}"
        return HostFacts(
            modules=modules,
            sysctls=sysctls,
            interfaces=interfaces,
            vms=vms,
            zvols=zvols,
            disks=disks,
            files={p: os.path.exists(p) for p in (*ledger.files, *state_files)},
            images=images,
            snapshots=snapshots,
            seeds=read_seed_ids(seeds or {}),
            copies=self.copier.copies() if self.copier is not None else {},
            unobserved=unobserved,
        )

    def _observe_disks(
        self, guests: Iterable[GuestSpec], unobserved: dict[Observation, str]
    ) -> dict[str, DiskFile]:
        """A stat of each disk file that can be made (a size or a source) or grown (a size)."""
        disks: dict[str, DiskFile] = {}
        for path in (
            d.path for g in guests for d in g.disks if d.path and (d.size is not None or d.source)
        ):
            try:
                disks[path] = self.disk_facts(path)
            except OSError as exc:
                failed = f"{path}: {exc.strerror}"
                unobserved["disks"] = (
                    f"{unobserved['disks']}; {failed}" if "disks" in unobserved else failed
                )
        return disks

    def observe_interfaces(self) -> dict[str, Interface]:
        return self._parsed(parse_ifconfig, self._must(OBSERVE_IFCONFIG).stdout)

    def _parsed(self, parser: Callable[[bytes], _T], output: bytes) -> _T:
        """`parser(output)`, reusing the last result while a command prints the same bytes: on
        a quiet host `ifconfig -a` says the same thing pass after pass, and parsing a
        thousand taps' worth of it is most of a pass. Results are never mutated."""
        last = self._parse_cache.get(parser)
        if last is not None and last[0] == output:
            return cast(_T, last[1])
        result = parser(output)
        self._parse_cache[parser] = (output, result)
        return result

    def list_vms(self) -> frozenset[str]:
        try:
            return frozenset(e.name for e in os.scandir(self.host_path(self.vmm_dir)))
        except FileNotFoundError:  # no VM exists yet: FreeBSD may not have the directory
            return frozenset()

    def disk_facts(self, path: str) -> DiskFile:
        try:
            info = os.stat(self._root_prefix + path)  # runs per disk per pass
        except FileNotFoundError:
            return _MISSING
        size, regular = info.st_size, stat.S_ISREG(info.st_mode)
        seen = self._disk_cache.get(path)
        if seen is None or seen.size != size or seen.regular != regular:
            seen = self._disk_cache[path] = DiskFile(exists=True, size=size, regular=regular)
        return seen

    def first_disk_bootable(self, guest: GuestSpec) -> bool:
        """vmrun.sh's test on the first disk: a boot sector or a UFS superblock. Read at boot
        time only, never on every pass."""
        try:
            with open(self.host_path(guest.disks[0].device), "rb") as f:
                return is_bootable(f.read(BOOT_PROBE_BYTES))
        except OSError:
            return False

    def _must(self, argv: tuple[str, ...]) -> Result:
        result = self.runner.run(argv)
        if not result.ok:
            raise command_error(result)
        return result

    # -- applying --------------------------------------------------------------------------

    def apply(self, action: Action) -> bool:
        """Make one action true. Returns False when the host already had it so (nothing was
        created, so the ledger must not claim it); raises HostCommandError on failure."""
        if isinstance(action, CreateDiskFile):
            return self._create_disk(action)
        if isinstance(action, CopyFile):
            return self._copy_file(action)
        if isinstance(action, CopyImage):
            return self._copy_image(action)
        if isinstance(action, GrowDisk) and action.zvol is None:
            return grow_file(action, self.host_path(action.device))
        if isinstance(action, BuildSeed):
            return build_seed(self.runner, action)
        if isinstance(action, Forget):
            if action.kind == "disk" and not action.what.startswith("/dev/"):
                if self.copier is not None:
                    self.copier.cancel(action.what)
                sweep_temporaries(self.host_path(action.what))  # a crashed copy's, never a disk
            return True
        if isinstance(action, CreateZvol):
            return self._create_zvol(action)
        return self._run_action(action)

    def _run_action(self, action: Action) -> bool:
        argv = action.argv
        if argv is None:
            raise ValueError(f"{type(action).__name__} cannot be applied by the driver")
        result = self.runner.run(argv)
        if result.ok:
            return True
        said = result.error_text
        if any(marker in said for marker in _ALREADY.get(type(action), ())):
            return False
        raise command_error(result)

    def _create_zvol(self, action: CreateZvol) -> bool:
        """Parents with `zfs create -p`, then the volume without -p, so an existing volume
        answers "dataset already exists" and is not taken for ours (reference §8.4); then a
        bounded wait for its device node, so its first boot finds the disk."""
        parents = action.parents_argv
        if parents is not None:
            self._must(parents)
        if not self._run_action(action):
            return False
        node = self.host_path(f"/dev/zvol/{action.zvol}")
        start = self._clock()
        while not node.exists():
            waited = self._clock() - start
            if waited >= self.zvol_node_wait:
                # Created all the same: the ledger owns it; a boot that finds no disk yet is
                # retried with the crash backoff.
                log.warning(
                    "host.zvol_node_missing",
                    zvol=action.zvol,
                    node=f"/dev/zvol/{action.zvol}",
                    waited=waited,
                )
                break
            self._sleep(min(_NODE_POLL, self.zvol_node_wait - waited))
        return True

    def _copy_image(self, action: CopyImage) -> bool:
        source, target = self.host_path(action.source), self.host_path(action.path)
        if self.copier is None:
            return copy_image(action, source, target)
        self.copier.start(action, source, target)
        raise ActionDeferred(f"{action.path}: copying in the background")

    def _create_disk(self, action: CreateDiskFile) -> bool:
        """A sparse image of its full size under a temporary name, then linked into place:
        the image's name never holds a half-made file (a failed ftruncate, EFBIG or ENOSPC,
        would leave a 0-byte one that the next pass takes as the disk), and link(2) never
        replaces a file that appeared meanwhile."""
        target = self.host_path(action.path)
        if target.exists():
            return False  # never over an existing image
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.creating")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            try:
                os.ftruncate(fd, action.size)  # sparse, like truncate -s
            finally:
                os.close(fd)
            os.link(tmp, target)
        except FileExistsError:
            return False
        finally:
            tmp.unlink(missing_ok=True)
        return True

    def _copy_file(self, action: CopyFile) -> bool:
        target = Path(action.path)
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if target.exists():
            return False
        tmp = target.with_name(f".{target.name}.tmp")
        shutil.copyfile(self.host_path(action.source), tmp)
        os.replace(tmp, target)
        return True
