"""The ledger: what the reconciler itself created, so that only that is ever undone.

`Ledger` is a frozen value and `after(action)` the pure rule for how a succeeded action changes
it; `load_ledger`/`save_ledger` persist it atomically as JSON in `state_dir`. Anything not in the
ledger (a tap the user made, a physical NIC, a bridge from the daemon config) is never removed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

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

LEDGER_FILE = "ledger.json"
FORMAT_VERSION = 1


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
        if isinstance(action, CreateDiskFile | CreateZvol) and guest:
            path = action.path if isinstance(action, CreateDiskFile) else f"/dev/zvol/{action.zvol}"
            return replace(self, disks={**self.disks, path: guest})
        if isinstance(action, CopyFile) and guest:
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

    def with_orders(self, orders: Mapping[str, int]) -> Ledger:
        """Remember each live guest's order; keep a gone guest's only while it still owns things."""
        owners = self.owners()
        merged = {**self.orders, **orders}
        return replace(self, orders={g: o for g, o in merged.items() if g in orders or g in owners})

    def to_json(self) -> dict[str, object]:
        return {
            "version": FORMAT_VERSION,
            "interfaces": {
                n: {"kind": c.kind, "guest": c.guest} for n, c in self.interfaces.items()
            },
            "members": [
                {"bridge": b, "member": m, "guest": g} for (b, m), g in sorted(self.members.items())
            ],
            "disks": dict(sorted(self.disks.items())),
            "files": dict(sorted(self.files.items())),
            "orders": dict(sorted(self.orders.items())),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Ledger:
        interfaces_raw = data.get("interfaces", {})
        members_raw = data.get("members", [])
        assert isinstance(interfaces_raw, dict) and isinstance(members_raw, list)
        return cls(
            interfaces={
                str(n): CreatedInterface(str(v["kind"]), str(v["guest"]))
                for n, v in interfaces_raw.items()
            },
            members={(str(m["bridge"]), str(m["member"])): str(m["guest"]) for m in members_raw},
            disks=_str_map(data.get("disks", {})),
            files=_str_map(data.get("files", {})),
            orders={k: int(str(v)) for k, v in _obj_map(data.get("orders", {})).items()},
        )


def _tap_number(name: str) -> tuple[int, str]:
    digits = name.removeprefix("tap")
    return (int(digits), name) if digits.isdigit() else (1 << 30, name)


def _obj_map(value: object) -> dict[str, object]:
    assert isinstance(value, dict)
    return {str(k): v for k, v in value.items()}


def _str_map(value: object) -> dict[str, str]:
    return {k: str(v) for k, v in _obj_map(value).items()}


def load_ledger(state_dir: Path) -> Ledger:
    """The saved ledger, or an empty one on a new host."""
    try:
        text = (state_dir / LEDGER_FILE).read_text()
    except FileNotFoundError:
        return Ledger()
    return Ledger.from_json(json.loads(text))


def save_ledger(state_dir: Path, ledger: Ledger) -> None:
    """Write atomically: a crash leaves the old ledger or the new one, never half of either."""
    write_atomic(state_dir / LEDGER_FILE, json.dumps(ledger.to_json(), indent=2) + "\n")


def write_atomic(path: Path, text: str, mode: int = 0o600, *, durable: bool = True) -> None:
    """Replace `path` so a reader sees the old text or the new one, never half of either.
    `durable` also survives a power cut (fsync); status files that are rewritten anyway
    skip it."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        data = memoryview(text.encode())
        while data:
            data = data[os.write(fd, data) :]
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    if durable:
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
