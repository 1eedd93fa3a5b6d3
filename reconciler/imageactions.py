"""The actions that make a guest's disks from images, grow disks and build cloud-init seeds.

Pure values, like `reconciler.actions` (whose `Action` and `Key` they are): each knows its key,
the line `plan` prints and the argv the driver runs (None where the driver works with files).
None of them ever removes or shrinks anything: a copy or a clone only makes a disk that does
not exist, a growth only grows, and a seed is only ever the daemon's own file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from reconciler.actions import Action, Key, Sign
from reconciler.cloudinit import makefs_argv


@dataclass(frozen=True, kw_only=True)
class CopyImage(Action):
    """A new disk file: a sparse copy of a raw image, grown to `size`, renamed into place; never
    over an existing file (host/sparse.py)."""

    path: str
    source: str
    size: int  # the disk's size: `size` from the spec, or the image's own
    size_text: str

    sign: ClassVar[Sign] = "+"
    owned: ClassVar[bool] = True
    key_label: ClassVar[str] = "disk"

    @property
    def key(self) -> Key:
        return self.key_of(self.path)

    @property
    def summary(self) -> str:
        return f"copy image {self.source} to {self.path} ({self.size_text}, sparse){self.for_guest}"


@dataclass(frozen=True, kw_only=True)
class CloneZvol(Action):
    """A new ZFS volume cloned from a snapshot (`zfs clone -p`, as CreateZvol's `-p` makes the
    parents). The clone is the reconciler's, and like every disk it is never destroyed."""

    zvol: str
    snapshot: str

    sign: ClassVar[Sign] = "+"
    owned: ClassVar[bool] = True
    key_label: ClassVar[str] = "disk"

    @property
    def key(self) -> Key:
        return self.key_of(f"/dev/zvol/{self.zvol}")

    @property
    def summary(self) -> str:
        return f"clone ZFS snapshot {self.snapshot} to volume {self.zvol}" + self.for_guest

    @property
    def argv(self) -> tuple[str, ...]:
        # zfs-clone(8): clone [-p] [-o property=value]... snapshot filesystem|volume
        return ("zfs", "clone", "-p", "-o", "volmode=dev", self.snapshot, self.zvol)


@dataclass(frozen=True, kw_only=True)
class GrowDisk(Action):
    """A disk made larger while no bhyve has it open: a file is extended (its new end is a
    hole), a volume's volsize is raised. Never smaller: the driver checks again."""

    device: str  # the file, or /dev/zvol/POOL/DATASET
    zvol: str | None = None
    size: int
    size_text: str
    current: int
    current_text: str

    key_label: ClassVar[str] = "grow"

    @property
    def key(self) -> Key:
        return self.key_of(self.device)

    @property
    def summary(self) -> str:
        return f"grow {self.zvol or self.device} {self.current_text} → {self.size_text}"

    @property
    def argv(self) -> tuple[str, ...] | None:
        if self.zvol is None:
            return None
        # zfsprops(7) volsize: "the volume size can only be set to a multiple of volblocksize"
        return ("zfs", "set", f"volsize={self.size_text}", self.zvol)


@dataclass(frozen=True, kw_only=True)
class BuildSeed(Action):
    """The guest's NoCloud seed image, written from `files` into `directory` and made with
    makefs under `staging`, then renamed to `path`; `instance_id` is noted beside it
    (`stamp`), which is how the next pass knows the seed is current."""

    path: str
    directory: str
    staging: str
    stamp: str
    instance_id: str
    files: tuple[tuple[str, bytes], ...]
    rebuild: bool = False

    owned: ClassVar[bool] = True
    key_label: ClassVar[str] = "seed"

    @property
    def key(self) -> Key:
        return self.key_of(self.path)

    @property
    def summary(self) -> str:
        what = "rebuild" if self.rebuild else "build"
        return f"{what} cloud-init seed {self.path} ({self.instance_id})" + self.for_guest

    @property
    def argv(self) -> tuple[str, ...]:
        return tuple(makefs_argv(self.staging, self.directory))
