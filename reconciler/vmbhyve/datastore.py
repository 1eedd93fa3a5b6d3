"""A whole vm-bhyve datastore imported at once: every guest, the bridges its switches become,
the VNC ports vm-bhyve would pick at each start fixed once, and what the admin must do on
the host.

Pure: the guests' parsed `.conf` files, system.conf and what the CLI observed (interfaces,
the daemon config's bridges, which files exist) in, a `DatastoreImport` out. vm-bhyve's
standard switch NAME is the bridge `vm-NAME`, which the daemon cannot take over (interface
names here have no `-`, and `ifconfig NAME create` makes only `bridgeN`), so each switch a
guest uses becomes a `bridgeN` of the daemon config with the switch's uplinks, or the bridge
the admin names with `--bridge SWITCH=BRIDGE`, or a config bridge that has those uplinks.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

from reconciler.vmbhyve.conf import ConfFile
from reconciler.vmbhyve.convert import GuestImport, convert_guest, is_uefi_loader
from reconciler.vmbhyve.draft import Note, Source
from reconciler.vmbhyve.system import Switch, SystemConf

FIRST_VNC_PORT = 5900  # vm::find_available_net_port's first try


@dataclass(frozen=True)
class GuestFile:
    """One guest directory: its `.conf` as read, or why it could not be read."""

    name: str
    conf: ConfFile | None
    problem: str | None = None


@dataclass(frozen=True)
class BridgeTable:
    """A `[bridges.NAME]` table the daemon config needs for one of vm-bhyve's switches."""

    switch: str
    bridge: str
    members: tuple[str, ...]
    new: bool  # not in the daemon config yet


@dataclass(frozen=True)
class DatastoreImport:
    guests: tuple[GuestImport, ...]
    bridges: tuple[BridgeTable, ...]
    todo: tuple[str, ...]  # host-wide steps, besides each guest's


def switch_members(switch: Switch) -> tuple[str, ...]:
    """The interfaces vm-bhyve adds to a standard switch's bridge (switch::standard::
    __configure_port): each port, or the vlan(4) interface PORT.VLAN it makes on it."""
    if switch.vlan is None:
        return switch.ports
    return tuple(f"{port}.{switch.vlan}" for port in switch.ports)


def _used_switches(guests: Sequence[GuestFile], system: SystemConf) -> list[Switch]:
    """The listed standard switches some guest's NIC is on, in switch_list order."""
    named = {
        setting.value
        for g in guests
        if g.conf is not None
        for setting in g.conf.settings
        if setting.key.startswith("network") and setting.key.endswith("_switch")
    }
    return [s for s in system.switches if s.name in named and s.type == "standard"]


def assign_bridges(
    switches: Sequence[Switch],
    *,
    config_bridges: Mapping[str, tuple[str, ...]],
    taken: Collection[str],
    overrides: Mapping[str, str],
) -> list[BridgeTable]:
    """Each switch's bridge: the one `overrides` names, else a config bridge with exactly its
    uplinks, else the lowest `bridgeN` no interface, config bridge or other switch has."""
    used = set(taken) | set(config_bridges) | set(overrides.values())
    tables = []
    for switch in switches:
        members = switch_members(switch)
        bridge = overrides.get(switch.name)
        if bridge is None and members:
            bridge = next((b for b, m in config_bridges.items() if set(m) == set(members)), None)
        if bridge is None:
            number = 0
            while f"bridge{number}" in used:
                number += 1
            bridge = f"bridge{number}"
        used.add(bridge)
        known = config_bridges.get(bridge)
        tables.append(BridgeTable(switch.name, bridge, members, new=known != members))
    return tables


def _vnc_ports(guests: Sequence[GuestFile]) -> dict[str, int]:
    """A fixed port for each UEFI guest with graphics and no graphics_port, in name order,
    from 5900 past every port a guest names."""
    confs = [(g.name, g.conf) for g in sorted(guests, key=lambda g: g.name) if g.conf]
    named = {int(c.text("graphics_port")) for _, c in confs if c.text("graphics_port").isdigit()}
    ports: dict[str, int] = {}
    port = FIRST_VNC_PORT
    for name, conf in confs:
        wanted = is_uefi_loader(conf.text("loader")) and conf.yesno("graphics")
        if wanted and not conf.text("graphics_port"):
            while port in named:
                port += 1
            ports[name] = port
            port += 1
    return ports


def import_datastore(
    ds_path: str,
    guests: Sequence[GuestFile],
    system: SystemConf,
    *,
    zfs_dataset: str | None = None,
    config_bridges: Mapping[str, tuple[str, ...]] | None = None,
    taken: Collection[str] = (),
    overrides: Mapping[str, str] | None = None,
    file_exists: Callable[[str], bool] = lambda _path: True,
) -> DatastoreImport:
    """Every guest of the datastore at `ds_path` (as the host sees it), in name order."""
    tables = assign_bridges(
        _used_switches(guests, system),
        config_bridges=config_bridges or {},
        taken=taken,
        overrides=overrides or {},
    )
    ports = _vnc_ports(guests)
    results = []
    for guest in sorted(guests, key=lambda g: g.name):
        if guest.conf is None:
            results.append(_unread(ds_path, guest))
            continue
        source = Source(
            ds_path=ds_path,
            system=system,
            bridges={t.switch: t.bridge for t in tables},
            zfs_dataset=zfs_dataset,
            vnc_port=ports.get(guest.name),
            file_exists=file_exists,
        )
        results.append(convert_guest(guest.name, guest.conf, source))
    used = {s for g in results if g.spec is not None for s in g.switches}
    wanted = tuple(t for t in tables if t.switch in used)
    todo = _switch_todo(system, wanted, used) + _datastore_todo(system, overrides or {})
    return DatastoreImport(guests=tuple(results), bridges=wanted, todo=tuple(todo))


def _unread(ds_path: str, guest: GuestFile) -> GuestImport:
    return GuestImport(
        name=guest.name,
        conf_path=f"{ds_path}/{guest.name}/{guest.name}.conf",
        spec=None,
        carried=(),
        dropped=(),
        refused=(Note("", guest.problem or "unreadable"),),
        todo=(),
        switches=(),
    )


def _switch_todo(system: SystemConf, tables: Sequence[BridgeTable], used: set[str]) -> list[str]:
    """What vm-bhyve does for each switch that the daemon does not."""
    todo = []
    for table in tables:
        switch = system.switch(table.switch)
        old = switch.bridge_name or f"the bridge of switch {switch.name}"
        if table.members:
            todo.append(
                f"switch {switch.name}: {', '.join(table.members)} can be in one bridge at a "
                f"time; vm-bhyve's {old} holds it until its last guest has moved: move the "
                f"switch's guests together, then `ifconfig {old} deletem MEMBER` for each"
            )
        if switch.vlan is not None:
            todo.append(
                f"switch {switch.name}: vm-bhyve makes the vlan(4) interfaces "
                f"{', '.join(table.members)}; the daemon does not: create them at boot "
                f"(rc.conf: " + " ".join(f'vlans_{p}="{switch.vlan}"' for p in switch.ports) + ")"
            )
        if switch.mtu is not None:
            todo.append(
                f"switch {switch.name}: vm-bhyve sets mtu {switch.mtu} on its ports, its bridge "
                f"and each guest's tap; the daemon sets no MTU: set it on the ports and on "
                f"{table.bridge} in rc.conf"
            )
        for family, addr in (("inet", switch.addr), ("inet6", switch.addr6)):
            if addr:
                todo.append(
                    f"switch {switch.name}: vm-bhyve puts {family} {addr} on its bridge; "
                    f"the daemon does not: give {table.bridge} that address in rc.conf"
                )
        if switch.private:
            todo.append(
                f"WARNING switch {switch.name} is private (vm-bhyve keeps its guests from "
                f"reaching each other); the daemon's {table.bridge} is not: its guests can "
                "reach each other unless you keep them apart another way"
            )
    for name in sorted(used):
        switch = system.switch(name)
        if switch.type == "manual":
            todo.append(
                f"switch {name} is your bridge {switch.bridge}: keep it configured; "
                "the daemon adds the guests' taps to it"
            )
    return todo


def _datastore_todo(system: SystemConf, overrides: Mapping[str, str]) -> list[str]:
    todo = [f"system.conf {problem}" for problem in system.problems]
    for store in system.datastores:
        if store.kind == "zfs":
            todo.append(
                f"datastore {store.name}: its guests are not imported by this run; "
                f"import the mountpoint of {store.location} too, with --zfs-dataset "
                f"{store.location}"
            )
        elif store.kind == "directory":
            todo.append(
                f"datastore {store.name}: its guests are not imported by this run; "
                f"import {store.location} too"
            )
    names = {s.name for s in system.switches}
    todo += [f"--bridge {s}=...: no switch {s} in system.conf" for s in overrides if s not in names]
    return todo
