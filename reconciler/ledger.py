"""The ledger: what the reconciler itself created, so that only that is ever undone.

Pure: `Ledger` is a frozen value, `after(action)` the rule for how a succeeded action changes
it, and `ledger_to_json`/`ledger_from_json` its file format, checked field by field (the edge,
`host/files.py`, stores it in `state_dir`). Anything not in the ledger (a tap the user made, a
physical NIC, a bridge from the daemon config) is never removed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from reconciler.actions import (
    Action,
    AddMember,
    CopyFile,
    CreateDiskFile,
    CreateInterface,
    CreateZvol,
    DestroyInterface,
    Forget,
    RemoveMember,
)
from reconciler.imageactions import BuildSeed, CloneZvol, CopyImage

LEDGER_FILE = "ledger.json"
FORMAT_VERSION = 1
_KINDS = ("tap", "bridge")


@dataclass(frozen=True)
class CreatedInterface:
    kind: str  # "tap" or "bridge"
    guest: str  # the guest it was created for


@dataclass(frozen=True)
class Ledger:
    interfaces: Mapping[str, CreatedInterface] = field(default_factory=dict)
    members: Mapping[tuple[str, str], str] = field(
        default_factory=dict
    )  # (bridge, member) -> guest
    disks: Mapping[str, str] = field(default_factory=dict)  # device path -> guest
    files: Mapping[str, str] = field(default_factory=dict)  # per-guest copies -> guest
    orders: Mapping[str, int] = field(default_factory=dict)  # guest -> order (to stop it when gone)

    def taps_of(self, guest: str) -> list[str]:
        """Taps created for `guest`, in numeric order (how allocated taps stay stable)."""
        names = [n for n, c in self.interfaces.items() if c.guest == guest and c.kind == "tap"]
        return sorted(names, key=_tap_number)

    def tap_claims(self) -> dict[tuple[str, str], str]:
        """Every allocated tap as a claim, ("tap", name) -> guest: a file that names another
        guest's allocated tap as its own is refused, as for an explicit one."""
        return {("tap", n): c.guest for n, c in self.interfaces.items() if c.kind == "tap"}

    def owners(self) -> set[str]:
        """Every guest that something on the host still belongs to."""
        owners = {c.guest for c in self.interfaces.values()}
        return (
            owners
            | set(self.members.values())
            | set(self.disks.values())
            | set(self.files.values())
        )

    def after(self, action: Action) -> Ledger:
        """The ledger once `action` has succeeded (and actually created or removed something)."""
        guest = action.guest
        if isinstance(action, CreateInterface) and guest:
            return replace(
                self,
                interfaces={**self.interfaces, action.name: CreatedInterface(action.kind, guest)},
            )
        if isinstance(action, DestroyInterface):
            return replace(
                self,
                interfaces={n: c for n, c in self.interfaces.items() if n != action.name},
                members={k: g for k, g in self.members.items() if action.name not in k},
            )
        if isinstance(action, AddMember) and guest:
            return replace(self, members={**self.members, (action.bridge, action.member): guest})
        if isinstance(action, RemoveMember):
            key = (action.bridge, action.member)
            return replace(self, members={k: g for k, g in self.members.items() if k != key})
        if isinstance(action, _MAKES_DISK) and guest:
            return replace(self, disks={**self.disks, _disk_of(action): guest})
        if isinstance(action, CopyFile | BuildSeed) and guest:
            return replace(self, files={**self.files, action.path: guest})
        if isinstance(action, Forget):
            what = action.what
            return replace(
                self,
                interfaces={n: c for n, c in self.interfaces.items() if n != what},
                members={k: g for k, g in self.members.items() if " ".join(k) != what},
                disks={p: g for p, g in self.disks.items() if p != what},
                files={p: g for p, g in self.files.items() if p != what},
            )
        return self

    def without(self, action: Action) -> Ledger:
        """The ledger with the claim `after(action)` made taken back: the action did not create
        what it would have (it failed, was skipped, or found it already there: not ours)."""
        guest = action.guest
        if isinstance(action, CreateInterface) and guest:
            return replace(
                self, interfaces={n: c for n, c in self.interfaces.items() if n != action.name}
            )
        if isinstance(action, AddMember) and guest:
            key = (action.bridge, action.member)
            return replace(self, members={k: g for k, g in self.members.items() if k != key})
        if isinstance(action, _MAKES_DISK) and guest:
            path = _disk_of(action)
            return replace(self, disks={p: g for p, g in self.disks.items() if p != path})
        if isinstance(action, CopyFile | BuildSeed) and guest:
            return replace(self, files={p: g for p, g in self.files.items() if p != action.path})
        return self

    def with_orders(self, orders: Mapping[str, int]) -> Ledger:
        """Remember each live guest's order; keep a gone guest's only while it still owns things."""
        owners = self.owners()
        merged = {**self.orders, **orders}
        return replace(self, orders={g: o for g, o in merged.items() if g in orders or g in owners})


_MAKES_DISK = (CreateDiskFile, CreateZvol, CopyImage, CloneZvol)


def _disk_of(action: CreateDiskFile | CreateZvol | CopyImage | CloneZvol) -> str:
    """The device path a disk-making action's disk is recorded under."""
    if isinstance(action, CreateDiskFile | CopyImage):
        return action.path
    return f"/dev/zvol/{action.zvol}"


def _tap_number(name: str) -> tuple[int, str]:
    digits = name.removeprefix("tap")
    return (int(digits), name) if digits.isdigit() else (1 << 30, name)


def ledger_to_json(ledger: Ledger) -> dict[str, object]:
    return {
        "version": FORMAT_VERSION,
        "interfaces": {
            n: {"kind": c.kind, "guest": c.guest} for n, c in sorted(ledger.interfaces.items())
        },
        "members": [
            {"bridge": b, "member": m, "guest": g} for (b, m), g in sorted(ledger.members.items())
        ],
        "disks": dict(sorted(ledger.disks.items())),
        "files": dict(sorted(ledger.files.items())),
        "orders": dict(sorted(ledger.orders.items())),
    }


def ledger_from_json(data: object) -> Ledger:
    """The ledger in `data` (parsed JSON); ValueError naming the first thing that is wrong."""
    top = _table(data, "the file")
    version = top.get("version")
    if type(version) is not int:
        raise ValueError(f"`version` must be an integer, got {version!r}")
    if version > FORMAT_VERSION:
        raise ValueError(
            f"it was written by a newer bhyve-reconciler (format {version}; this one reads "
            f"{FORMAT_VERSION} and older): upgrade, or restore the older file"
        )
    interfaces: dict[str, CreatedInterface] = {}
    for name, entry in _table(top.get("interfaces", {}), "interfaces").items():
        body = _table(entry, f"interfaces.{name}")
        kind = _text(body.get("kind"), f"interfaces.{name}.kind")
        if kind not in _KINDS:
            raise ValueError(f"interfaces.{name}.kind must be tap or bridge, got {kind!r}")
        interfaces[name] = CreatedInterface(kind, _text(body.get("guest"), f"interfaces.{name}"))
    members: dict[tuple[str, str], str] = {}
    raw_members = top.get("members", [])
    if not isinstance(raw_members, list):
        raise ValueError("`members` must be a list")
    for index, entry in enumerate(raw_members):
        where = f"members[{index}]"
        body = _table(entry, where)
        key = (_text(body.get("bridge"), where), _text(body.get("member"), where))
        members[key] = _text(body.get("guest"), where)
    orders: dict[str, int] = {}
    for guest, order in _table(top.get("orders", {}), "orders").items():
        if type(order) is not int:
            raise ValueError(f"orders.{guest} must be an integer, got {order!r}")
        orders[guest] = order
    return Ledger(
        interfaces=interfaces,
        members=members,
        disks=_texts(top.get("disks", {}), "disks"),
        files=_texts(top.get("files", {}), "files"),
        orders=orders,
    )


def _table(value: object, where: str) -> dict[str, object]:
    if not isinstance(value, dict):
        raise ValueError(f"{where} must be a JSON object, got {type(value).__name__}")
    return value


def _text(value: object, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{where} must be a non-empty string, got {value!r}")
    return value


def _texts(value: object, where: str) -> dict[str, str]:
    return {key: _text(item, f"{where}.{key}") for key, item in _table(value, where).items()}
