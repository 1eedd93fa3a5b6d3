"""vm-bhyve's `$vm_dir/.config/system.conf`: virtual switches, datastores, console mode.

Pure: the file's text in (read as lib/vm-config `config::core::load` reads it, see `conf.py`),
typed values out. Facts follow lib/vm-switch, lib/vm-switch-{standard,manual,vale,netgraph,
vxlan}, lib/vm-datastore and lib/vm-core `core::__start` (freebsd/vm-bhyve 89c21d0). A value
it cannot read (a VLAN or MTU that is not a number) is a problem with its line, never a guess.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from reconciler.vmbhyve.conf import ConfFile, ConfProblem, is_yes, parse_conf

SWITCH_TYPES = ("standard", "manual", "vale", "netgraph", "vxlan")
# switch::standard::init: a bridge is renamed `vm-NAME` only when NAME has at most 12
# characters (an interface name has 15); a longer switch keeps the kernel's `bridgeN`.
_RENAME_MAX = 12
_NUMBER_RE = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class Switch:
    """One virtual switch. `type` is as written (vm-bhyve defaults a missing type to standard)."""

    name: str
    type: str = "standard"
    ports: tuple[str, ...] = ()  # ports_NAME: physical members (uplinks)
    vlan: int | None = None  # vlan_NAME: members are PORT.VLAN vlan(4) interfaces
    private: bool = False  # private_NAME: `ifconfig BRIDGE private TAP` for each guest tap
    mtu: int | None = None
    addr: str | None = None  # addr_NAME (IPv4 CIDR on the bridge)
    addr6: str | None = None
    bridge: str | None = None  # bridge_NAME: the existing bridge of a manual switch
    listed: bool = True  # named in switch_list (guests may name switches that are not)

    @property
    def bridge_name(self) -> str | None:
        """The if_bridge interface taps join, when it can be known without the host.

        standard and vxlan: `vm-NAME` (switch::standard::init renames it); None when the name
        is too long to rename. manual: bridge_NAME. vale and netgraph have no bridge.
        """
        if self.type == "manual":
            return self.bridge
        if self.type in ("standard", "vxlan") and len(self.name) <= _RENAME_MAX:
            return f"vm-{self.name}"
        return None


@dataclass(frozen=True)
class Datastore:
    """A `datastore_list` entry: path_NAME is `/dir`, `zfs:pool/ds`, `iso:/dir` or `img:/dir`."""

    name: str
    kind: str  # directory, zfs, iso or img
    location: str  # the directory, or the ZFS dataset for zfs


@dataclass(frozen=True)
class SystemConf:
    switches: tuple[Switch, ...]
    datastores: tuple[Datastore, ...]
    console: str  # "nmdm" (default) or "tmux": tmux runs `vm _run -tf`, so com1 is stdio
    conf: ConfFile
    problems: tuple[ConfProblem, ...]

    def switch(self, name: str) -> Switch:
        """The switch a guest's networkN_switch names, as lib/vm-switch resolves it.

        A name missing from switch_list still gets a type (`type_NAME`, default standard):
        vm-bhyve then creates the tap and finds no bridge to add it to.
        """
        for switch in self.switches:
            if switch.name == name:
                return switch
        return _switch(self.conf, name, listed=False, problems=[])


def _number(conf: ConfFile, key: str, problems: list[ConfProblem]) -> int | None:
    setting = conf.setting(key)
    if setting is None or setting.value == "":
        return None
    if _NUMBER_RE.fullmatch(setting.value) is None:
        problems.append(
            ConfProblem(setting.line, "", f"`{key}` must be a number, got {setting.value!r}")
        )
        return None
    return int(setting.value)


def _switch(conf: ConfFile, name: str, *, listed: bool, problems: list[ConfProblem]) -> Switch:
    kind = conf.text(f"type_{name}", "standard")
    setting = conf.setting(f"type_{name}")
    if kind not in SWITCH_TYPES and setting is not None:
        problems.append(
            ConfProblem(
                setting.line,
                "",
                f"switch `{name}` has type {kind!r}; vm-bhyve knows "
                + ", ".join(SWITCH_TYPES)
                + " and adds no device for a NIC on any other",
            )
        )
    return Switch(
        name=name,
        type=kind,
        ports=tuple(conf.text(f"ports_{name}").split()),
        vlan=_number(conf, f"vlan_{name}", problems),
        private=is_yes(conf.text(f"private_{name}")),
        mtu=_number(conf, f"mtu_{name}", problems),
        addr=conf.get(f"addr_{name}") or None,
        addr6=conf.get(f"addr6_{name}") or None,
        bridge=conf.get(f"bridge_{name}") or None,
        listed=listed,
    )


def _datastore(name: str, spec: str) -> Datastore:
    kind, sep, rest = spec.partition(":")
    if sep and kind in ("zfs", "iso", "img"):
        return Datastore(name, kind, rest)
    return Datastore(name, "directory", spec)


def parse_system_conf(text: str) -> SystemConf:
    """Switches in `switch_list` order, datastores in `datastore_list` order."""
    conf = parse_conf(text)
    problems = list(conf.problems)
    switches = tuple(
        _switch(conf, name, listed=True, problems=problems)
        for name in conf.text("switch_list").split()
    )
    datastores = tuple(
        _datastore(name, conf.text(f"path_{name}"))
        for name in conf.text("datastore_list").split()
        if name != "default" and conf.text(f"path_{name}")
    )
    return SystemConf(
        switches=switches,
        datastores=datastores,
        console=conf.text("console", "nmdm"),
        conf=conf,
        problems=tuple(sorted(problems, key=lambda p: p.line)),
    )
