"""The spec being drawn up from one vm-bhyve guest's `.conf`, with the account of every key.

Pure and short-lived: the importer reads keys through a `Draft`, which remembers each key it
looked at, so that every key of the file ends up carried over, dropped or refused (never
silently lost), and builds the guest file's TOML document as it goes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.vmbhyve.conf import ConfFile
from reconciler.vmbhyve.system import SystemConf


@dataclass(frozen=True)
class Note:
    """A key and what became of it, or why the guest cannot be converted."""

    key: str
    reason: str

    def __str__(self) -> str:
        return f"{self.key}: {self.reason}" if self.key else self.reason


@dataclass(frozen=True)
class Source:
    """What the importer knows besides a guest's `.conf` (the CLI finds it on the host)."""

    ds_path: str  # the datastore directory as the host sees it: NAME/NAME.conf is under it
    system: SystemConf
    bridges: Mapping[str, str] = field(default_factory=dict)  # standard switch -> bridge
    zfs_dataset: str | None = None  # the datastore's dataset, for zvol disks
    vnc_port: int | None = None  # the port for a framebuffer without graphics_port
    file_exists: Callable[[str], bool] = lambda _path: True


class Draft:
    """One guest's TOML document and the account of its keys, filled in by the importer."""

    def __init__(self, name: str, conf: ConfFile) -> None:
        self.name = name
        self.conf = conf
        self.doc: dict[str, Any] = {"name": name}
        self.carried: list[str] = []
        self.dropped: list[Note] = []
        self.refused: list[Note] = []
        self.todo: list[str] = []
        self.switches: list[str] = []
        self.seen: set[str] = set()

    def text(self, key: str, default: str = "") -> str:
        """vm-bhyve's value of `key` (`config::get`), and the key is accounted for."""
        self.seen.add(key)
        return self.conf.text(key, default)

    def yes(self, key: str, default: str = "") -> bool:
        """`config::yesno`, and the key is accounted for."""
        self.seen.add(key)
        return self.conf.yesno(key, default)

    def carry(self, *keys: str) -> None:
        """The keys present in the file, and not refused, are carried over into the spec."""
        refused = {note.key for note in self.refused}
        for key in keys:
            self.seen.add(key)
            present = self.conf.setting(key) is not None
            if present and key not in self.carried and key not in refused:
                self.carried.append(key)

    def drop(self, key: str, reason: str) -> None:
        self.seen.add(key)
        if self.conf.setting(key) is not None:
            self.dropped.append(Note(key, reason))

    def refuse(self, key: str, reason: str) -> None:
        self.seen.add(key)
        self.refused.append(Note(key, reason))

    def account(self, prefix: str) -> None:
        """Every key of one device (`disk1_`, `network0_`) is accounted for: carried, or
        answered by the refusal of that device."""
        self.seen.update(s.key for s in self.conf.settings if s.key.startswith(prefix))

    def table(self, name: str) -> dict[str, Any]:
        """The document's table `name`, made when first asked for."""
        table: dict[str, Any] = self.doc.setdefault(name, {})
        return table
