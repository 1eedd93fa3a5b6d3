"""Phase 6 of a plan (reconciler/plan.py has the order of all phases): what each guest that is
not running needs on disk before it boots.

  disk missing, no source     CreateDiskFile / CreateZvol (with a size; none without)
  disk missing, image source  CopyImage: a sparse copy, grown to `size` (file disks)
  disk missing, snapshot      CloneZvol, then GrowDisk when `size` is larger (zvol disks)
  disk there, `size` larger   GrowDisk; smaller: a warning, never an action (rule 1)
  [cloud_init]                BuildSeed when the seed's instance-id is not the one on disk
  [uefi] vars                 CopyFile of the vars template, once (even for a running guest)

Nothing here touches the disks of a running guest (its bhyve holds them open): they are not
even observed. What cannot be done yet (an image that is missing or not raw, a snapshot that
does not exist, a copy in flight or failed) is a wait for the guest's start, with why, and the
disk is made by a later pass once it can be. Pure: values in, steps and messages out.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from reconciler.actions import Action, CopyFile, CreateDiskFile, CreateZvol
from reconciler.cloudinit import seed_for
from reconciler.facts import DiskCopy, HostFacts
from reconciler.imageactions import BuildSeed, CloneZvol, CopyImage, GrowDisk
from reconciler.plan_phases import Step
from reconciler.spec import Disk, GuestSpec
from reconciler.units import format_size

VARS_FILE = "BHYVE_UEFI_VARS.fd"
SEED_IMAGE = "seed.iso"  # the CD bhyve attaches
SEED_DIRECTORY = "seed"  # the seed's files, as makefs read them (kept: what the guest got)
SEED_STAGING = ".seed.iso.tmp"  # makefs writes here; renamed over SEED_IMAGE when complete
SEED_STAMP = "seed.id"  # the instance-id of SEED_IMAGE, written after the rename


@dataclass(frozen=True)
class DiskPhase:
    """The phase's steps, the guests whose start waits for a disk (and why), and warnings."""

    steps: tuple[Step, ...] = ()
    waits: Mapping[str, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Disk:
    """What one disk needs: actions, or why it must wait, and a warning."""

    actions: tuple[Action, ...] = ()
    wait: str | None = None
    warning: str | None = None


def guest_state_dir(guests_dir: str, name: str) -> str:
    return posixpath.join(guests_dir, name)


def uefi_vars_file(guests_dir: str, guest: GuestSpec) -> str | None:
    """The daemon's own copy of the UEFI variable store for the guest, when it keeps one;
    none with a `vars_file`, which belongs to the admin: never created, never forgotten."""
    if guest.loader != "uefi" or not guest.uefi.vars or guest.uefi.vars_file is not None:
        return None
    return posixpath.join(guest_state_dir(guests_dir, guest.name), VARS_FILE)


def vars_template(guest: GuestSpec) -> str:
    return posixpath.join(posixpath.dirname(guest.uefi.firmware), VARS_FILE)


def seed_image(guests_dir: str, guest: GuestSpec) -> str | None:
    """The guest's cloud-init seed CD, when it has a `[cloud_init]`."""
    if guest.cloud_init is None:
        return None
    return posixpath.join(guest_state_dir(guests_dir, guest.name), SEED_IMAGE)


def needs_preparation(guest: GuestSpec) -> bool:
    """Whether a pass may have something to make ready before the guest boots: a disk to
    create, copy, clone or grow, or a cloud-init seed."""
    return guest.cloud_init is not None or any(
        d.size is not None or d.source is not None for d in guest.disks
    )


def seed_files(
    guests: Sequence[GuestSpec], guests_dir: str, running: frozenset[str]
) -> dict[str, tuple[str, str]]:
    """guest -> (its seed image, the stamp beside it) for each guest with a `[cloud_init]` that
    is not running: what the driver reads to tell whether a seed is current."""
    found: dict[str, tuple[str, str]] = {}
    for g in guests:
        image = seed_image(guests_dir, g)
        if image is not None and g.name not in running:
            stamp = posixpath.join(guest_state_dir(guests_dir, g.name), SEED_STAMP)
            found[g.name] = (image, stamp)
    return found


def disks_phase(
    guests: Sequence[GuestSpec], facts: HostFacts, *, guests_dir: str, running: frozenset[str]
) -> DiskPhase:
    """Every guest's disk, seed and UEFI vars steps, in the guests' order."""
    steps: list[Step] = []
    waits: dict[str, str] = {}
    warnings: list[str] = []
    for g in guests:
        if g.name not in running:
            needs = [_disk(g.name, d, facts) for d in g.disks]
            needs.append(_seed(g, facts, guests_dir))
            steps += [Step(a, (g.name,)) for n in needs for a in n.actions]
            if why := "; ".join(n.wait for n in needs if n.wait):
                waits[g.name] = why
            warnings += [f"guest {g.name}: {n.warning}" for n in needs if n.warning]
        vars_path = uefi_vars_file(guests_dir, g)
        if vars_path is not None and not facts.files.get(vars_path, False):
            copy = CopyFile(source=vars_template(g), path=vars_path, guest=g.name)
            steps.append(Step(copy, (g.name,)))
    return DiskPhase(tuple(steps), waits, tuple(warnings))


def _disk(guest: str, disk: Disk, facts: HostFacts) -> _Disk:
    if disk.path is not None:
        return _file_disk(guest, disk, disk.path, facts)
    assert disk.zvol is not None
    return _zvol_disk(guest, disk, disk.zvol, facts)


def _file_disk(guest: str, disk: Disk, path: str, facts: HostFacts) -> _Disk:
    seen = facts.disks.get(path)
    if seen is None and "disks" in facts.unobserved:
        return _Disk()  # its stat failed: whether it exists is unknown, and its start waits
    if seen is not None and seen.exists:
        return _growth(guest, path, None, seen.size, disk.size) if seen.regular else _Disk()
    if disk.source is None:
        if disk.size is None:
            return _Disk()
        size_text = format_size(disk.size)
        return _Disk((CreateDiskFile(path=path, size=disk.size, size_text=size_text, guest=guest),))
    copy = facts.copies.get(path)
    if copy is not None:
        return _Disk(wait=_copying(path, copy))
    image = facts.images.get(disk.source)
    if image is None:
        return _Disk(wait=f"the image {disk.source} was not looked at")
    if image.problem is not None:
        return _Disk(wait=image.problem)
    if disk.size is not None and disk.size < image.size:
        return _Disk(
            wait=f"{path}: size {format_size(disk.size)} is smaller than the image "
            f"{disk.source} ({format_size(image.size)}): a disk can hold its whole image only"
        )
    size = image.size if disk.size is None else disk.size
    copy_action = CopyImage(
        path=path, source=disk.source, size=size, size_text=format_size(size), guest=guest
    )
    return _Disk((copy_action,))


def _copying(path: str, copy: DiskCopy) -> str:
    if copy.error is not None:
        return f"copying {copy.source} to {path} failed: {copy.error}; the next resync tries again"
    percent = f"{100 * copy.done // copy.total}%, " if copy.total else ""
    return (
        f"{path} is being copied from {copy.source} ({percent}{format_size_rounded(copy.done)} "
        f"of {format_size_rounded(copy.total)} at {format_size_rounded(int(copy.rate))}/s)"
    )


def format_size_rounded(n: int) -> str:
    """`n` bytes for a person, to one decimal: 1.5G, 300.0M."""
    for unit, shift in (("T", 40), ("G", 30), ("M", 20), ("K", 10)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):.1f}{unit}"
    return f"{n}B"


def _zvol_disk(guest: str, disk: Disk, zvol: str, facts: HostFacts) -> _Disk:
    if facts.zvols is None:
        return _Disk()  # not observed: its guest's start waits for it (plan_phases)
    device = f"/dev/zvol/{zvol}"
    current = facts.zvols.get(zvol)
    if current is not None:
        return _growth(guest, device, zvol, current, disk.size)
    if disk.source is None:
        if disk.size is None:
            return _Disk()
        return _Disk((CreateZvol(zvol=zvol, size_text=format_size(disk.size), guest=guest),))
    if facts.snapshots is None:
        why = facts.unobserved.get("snapshots", "not asked for")
        return _Disk(wait=f"ZFS snapshots not observed: {why}")
    volsize = facts.snapshots.get(disk.source)
    if volsize is None:
        return _Disk(wait=f"the snapshot {disk.source} does not exist (yet), or is not of a volume")
    clone = CloneZvol(zvol=zvol, snapshot=disk.source, guest=guest)
    grown = _growth(guest, device, zvol, volsize, disk.size, after=clone)
    return _Disk((clone, *grown.actions), warning=grown.warning)


def _growth(
    guest: str,
    device: str,
    zvol: str | None,
    current: int,
    size: int | None,
    *,
    after: Action | None = None,
) -> _Disk:
    if size is None or size == current:
        return _Disk()
    if size < current:
        return _Disk(
            warning=f"{zvol or device}: size {format_size(size)} is smaller than the disk "
            f"({format_size(current)}); disks are never shrunk, so it stays as it is"
        )
    grow = GrowDisk(
        device=device,
        zvol=zvol,
        size=size,
        size_text=format_size(size),
        current=current,
        current_text=format_size(current),
        guest=guest,
        requires=(after.key,) if after is not None else (),
    )
    return _Disk((grow,))


def _seed(guest: GuestSpec, facts: HostFacts, guests_dir: str) -> _Disk:
    image = seed_image(guests_dir, guest)
    if image is None:
        return _Disk()
    seed, problem = seed_for(guest)
    if seed is None:
        return _Disk(wait=f"its cloud-init seed cannot be made: {problem}")
    current = facts.seeds.get(guest.name)
    if current == seed.instance_id:
        return _Disk()
    directory = guest_state_dir(guests_dir, guest.name)
    build = BuildSeed(
        path=image,
        directory=posixpath.join(directory, SEED_DIRECTORY),
        staging=posixpath.join(directory, SEED_STAGING),
        stamp=posixpath.join(directory, SEED_STAMP),
        instance_id=seed.instance_id,
        files=tuple(sorted(seed.files.items())),
        rebuild=current is not None,
        guest=guest.name,
    )
    return _Disk((build,))
