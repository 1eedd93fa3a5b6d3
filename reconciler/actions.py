"""Actions: the idempotent steps that close the gap between desired and observed state.

Pure values. Each action knows its key (what other actions depend on), the line `plan` prints
for a person, and the argv the FreeBSD driver runs (None when the driver does it with file
operations, or when the guest supervisor owns it). Nothing here runs anything.

Keys are typed: `Key(CreateInterface, ("tap0",))` is what `CreateInterface(name="tap0")`
provides, and the only way to name it is `CreateInterface.key_of("tap0")`, so a planner's
`requires` and the action it waits for cannot drift apart. Only `str(key)` (for `plan --json`
and logs) spells a key as text: `interface:tap0`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

Sign = Literal["+", "~", "-"]


@dataclass(frozen=True)
class Key:
    """What one action provides and others may require: the providing action class and the
    names it acts on (an interface; a bridge and its member; a guest)."""

    action: type[Action]
    names: tuple[str, ...]

    def __str__(self) -> str:
        return ":".join((self.action.key_label, *self.names))


@dataclass(frozen=True, kw_only=True)
class Action:
    """Base of every action. `requires` lists the keys of actions that must succeed first."""

    requires: tuple[Key, ...] = ()
    guest: str | None = None  # the guest it is for; None for the host or the daemon config

    sign: ClassVar[Sign] = "~"
    owned: ClassVar[bool] = False  # what it makes is the reconciler's (see `creates`)
    key_label: ClassVar[str]  # how its keys read: `interface` in `interface:tap0`

    @classmethod
    def key_of(cls, *names: str) -> Key:
        """The key an action of this class provides for `names` (see each class's `key`)."""
        return Key(cls, names)

    @property
    def key(self) -> Key:
        raise NotImplementedError

    @property
    def summary(self) -> str:
        raise NotImplementedError

    @property
    def argv(self) -> tuple[str, ...] | None:
        return None

    @property
    def supervised(self) -> bool:
        """True for guest starts and stops, which belong to the guest supervisor."""
        return False

    @property
    def creates(self) -> bool:
        """True when, done for a guest, it makes something the ledger then owns: the ledger
        records it before it runs (write-ahead) and takes it back if it did not create it."""
        return self.owned and self.guest is not None

    @property
    def for_guest(self) -> str:
        """` for guest NAME` to end a summary with, or nothing for the host's own actions."""
        return f" for guest {self.guest}" if self.guest else ""

    def describe(self) -> str:
        """One line for a person: `+ create tap0`, `- destroy tap3 (created for guest old)`."""
        return f"{self.sign} {self.summary}"

    def as_dict(self) -> dict[str, object]:
        return {
            "key": str(self.key),
            "sign": self.sign,
            "action": type(self).__name__,
            "summary": self.summary,
            "guest": self.guest,
            "argv": list(self.argv) if self.argv is not None else None,
            "requires": [str(k) for k in self.requires],
        }


@dataclass(frozen=True, kw_only=True)
class LoadModule(Action):
    module: str

    sign: ClassVar[Sign] = "+"
    key_label: ClassVar[str] = "module"

    @property
    def key(self) -> Key:
        return self.key_of(self.module)

    @property
    def summary(self) -> str:
        return f"load kernel module {self.module}"

    @property
    def argv(self) -> tuple[str, ...]:
        return ("kldload", self.module)


@dataclass(frozen=True, kw_only=True)
class SetSysctl(Action):
    name: str
    value: str
    current: str | None = None

    key_label: ClassVar[str] = "sysctl"

    @property
    def key(self) -> Key:
        return self.key_of(self.name)

    @property
    def summary(self) -> str:
        was = "unset" if self.current is None else self.current
        return f"set {self.name}={self.value} (now {was})"

    @property
    def argv(self) -> tuple[str, ...]:
        return ("sysctl", f"{self.name}={self.value}")


@dataclass(frozen=True, kw_only=True)
class CreateInterface(Action):
    name: str
    kind: Literal["tap", "bridge"]

    sign: ClassVar[Sign] = "+"
    owned: ClassVar[bool] = True
    key_label: ClassVar[str] = "interface"

    @property
    def key(self) -> Key:
        return self.key_of(self.name)

    @property
    def summary(self) -> str:
        return f"create {self.name}" + self.for_guest

    @property
    def argv(self) -> tuple[str, ...]:
        return ("ifconfig", self.name, "create")


@dataclass(frozen=True, kw_only=True)
class DestroyInterface(Action):
    name: str
    kind: Literal["tap", "bridge"]

    sign: ClassVar[Sign] = "-"
    key_label: ClassVar[str] = "destroy-interface"

    @property
    def key(self) -> Key:
        return self.key_of(self.name)

    @property
    def summary(self) -> str:
        owner = f"guest {self.guest}" if self.guest else "a guest that is gone"
        return f"destroy {self.name} (created for {owner})"

    @property
    def argv(self) -> tuple[str, ...]:
        return ("ifconfig", self.name, "destroy")


@dataclass(frozen=True, kw_only=True)
class AddMember(Action):
    bridge: str
    member: str

    owned: ClassVar[bool] = True
    key_label: ClassVar[str] = "member"

    @property
    def key(self) -> Key:
        return self.key_of(self.bridge, self.member)

    @property
    def summary(self) -> str:
        return f"add {self.member} to {self.bridge}" + self.for_guest

    @property
    def argv(self) -> tuple[str, ...]:
        return ("ifconfig", self.bridge, "addm", self.member)


@dataclass(frozen=True, kw_only=True)
class RemoveMember(Action):
    bridge: str
    member: str

    sign: ClassVar[Sign] = "-"
    key_label: ClassVar[str] = "remove-member"

    @property
    def key(self) -> Key:
        return self.key_of(self.bridge, self.member)

    @property
    def summary(self) -> str:
        owner = f"guest {self.guest}" if self.guest else "a guest that is gone"
        return f"remove {self.member} from {self.bridge} (added for {owner})"

    @property
    def argv(self) -> tuple[str, ...]:
        return ("ifconfig", self.bridge, "deletem", self.member)


@dataclass(frozen=True, kw_only=True)
class InterfaceUp(Action):
    name: str

    key_label: ClassVar[str] = "up"

    @property
    def key(self) -> Key:
        return self.key_of(self.name)

    @property
    def summary(self) -> str:
        return f"bring {self.name} up"

    @property
    def argv(self) -> tuple[str, ...]:
        return ("ifconfig", self.name, "up")


@dataclass(frozen=True, kw_only=True)
class CreateDiskFile(Action):
    """A sparse image, with its parent directories; never over an existing file."""

    path: str
    size: int
    size_text: str

    sign: ClassVar[Sign] = "+"
    owned: ClassVar[bool] = True
    key_label: ClassVar[str] = "disk"

    @property
    def key(self) -> Key:
        return self.key_of(self.path)

    @property
    def summary(self) -> str:
        return f"create disk image {self.path} ({self.size_text}, sparse)" + self.for_guest


@dataclass(frozen=True, kw_only=True)
class CreateZvol(Action):
    zvol: str
    size_text: str

    sign: ClassVar[Sign] = "+"
    owned: ClassVar[bool] = True
    key_label: ClassVar[str] = "disk"

    @property
    def key(self) -> Key:
        return self.key_of(f"/dev/zvol/{self.zvol}")

    @property
    def summary(self) -> str:
        return f"create ZFS volume {self.zvol} ({self.size_text})" + self.for_guest

    @property
    def argv(self) -> tuple[str, ...]:
        # No -p: with it OpenZFS says nothing when the volume exists already (zfs_main.c
        # zfs_do_create), so a volume someone else made would pass for ours. The driver makes
        # missing parents first (`parents_argv`).
        return ("zfs", "create", "-V", self.size_text, "-o", "volmode=dev", self.zvol)

    @property
    def parents_argv(self) -> tuple[str, ...] | None:
        """`zfs create -p PARENT`: the missing filesystems above the volume (none for a volume
        right under its pool)."""
        parent = self.zvol.rpartition("/")[0]
        return ("zfs", "create", "-p", parent) if "/" in parent else None


@dataclass(frozen=True, kw_only=True)
class CopyFile(Action):
    """A per-guest copy of a template (the UEFI variable store); never over an existing file."""

    source: str
    path: str

    sign: ClassVar[Sign] = "+"
    owned: ClassVar[bool] = True
    key_label: ClassVar[str] = "file"

    @property
    def key(self) -> Key:
        return self.key_of(self.path)

    @property
    def summary(self) -> str:
        return f"copy {self.source} to {self.path}" + self.for_guest


@dataclass(frozen=True, kw_only=True)
class Forget(Action):
    """Drop a ledger entry, leaving the host as it is: a gone guest's disk image is kept, and an
    interface or membership that already vanished needs no command."""

    kind: Literal["disk", "file", "interface", "member"]
    what: str  # the path, the interface name, or "BRIDGE MEMBER"

    sign: ClassVar[Sign] = "-"
    key_label: ClassVar[str] = "forget"

    @property
    def key(self) -> Key:
        return self.key_of(self.kind, self.what)

    @property
    def summary(self) -> str:
        owner = f"guest {self.guest}" if self.guest else "a guest that is gone"
        if self.kind in ("disk", "file"):
            return f"forget {self.what} (created for {owner}; kept, never deleted)"
        return f"forget {self.kind} {self.what} (created for {owner}; already gone)"


@dataclass(frozen=True, kw_only=True)
class DestroyVM(Action):
    """A VM object left in vmm_dir with no bhyve: destroy it so the guest can boot clean."""

    name: str

    sign: ClassVar[Sign] = "-"
    key_label: ClassVar[str] = "destroy-vm"

    @property
    def key(self) -> Key:
        return self.key_of(self.name)

    @property
    def summary(self) -> str:
        return f"destroy stale VM {self.name} (no bhyve runs it)"

    @property
    def argv(self) -> tuple[str, ...]:
        return ("bhyvectl", f"--vm={self.name}", "--destroy")


@dataclass(frozen=True, kw_only=True)
class StartGuest(Action):
    name: str
    order: int = 0

    sign: ClassVar[Sign] = "+"
    key_label: ClassVar[str] = "start"

    @property
    def key(self) -> Key:
        return self.key_of(self.name)

    @property
    def summary(self) -> str:
        return f"start guest {self.name}"

    @property
    def supervised(self) -> bool:
        return True


@dataclass(frozen=True, kw_only=True)
class StopGuest(Action):
    name: str
    reason: str
    order: int = 0

    sign: ClassVar[Sign] = "-"
    key_label: ClassVar[str] = "stop"

    @property
    def key(self) -> Key:
        return self.key_of(self.name)

    @property
    def summary(self) -> str:
        return f"stop guest {self.name} ({self.reason})"

    @property
    def supervised(self) -> bool:
        return True
