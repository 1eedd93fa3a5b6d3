"""Planning: the pure diff from desired state (specs) and observed state (facts) to actions.

`plan_actions(desired, facts, ledger)` returns the ordered, idempotent actions that make the
host match; an empty list means converged. It never runs, reads or writes anything, so a dry
run is free and every case is a table of values (tests/plan/).
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

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
    InterfaceUp,
    LoadModule,
    RemoveMember,
    SetSysctl,
    StartGuest,
    StopGuest,
)
from reconciler.bhyve import BootCommands, boot_commands, needs_install
from reconciler.config import DaemonConfig
from reconciler.facts import HostFacts
from reconciler.ledger import Ledger
from reconciler.spec import GuestSpec
from reconciler.units import format_size

UP_ON_OPEN = "net.link.tap.up_on_open"
VARS_FILE = "BHYVE_UEFI_VARS.fd"


@dataclass(frozen=True)
class PlanContext:
    """What planning needs besides specs, facts and ledger: the daemon config's uplinks and
    where per-guest state lives."""

    uplinks: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    guests_dir: str = "/var/db/bhyve-reconciler/guests"
    running: frozenset[str] = frozenset()  # guests with a live bhyve (or loader)


def plan_context(config: DaemonConfig, running: frozenset[str] = frozenset()) -> PlanContext:
    """The planning context a daemon config gives."""
    return PlanContext(
        uplinks=config.bridges, guests_dir=str(config.state_dir / "guests"), running=running
    )


def next_boot(
    guest: GuestSpec,
    *,
    desired: Mapping[str, GuestSpec],
    interfaces: Iterable[str],
    ledger: Ledger,
    ctx: PlanContext,
    first_disk_bootable: bool,
) -> BootCommands:
    """What the guest's next boot runs: `commands NAME` prints it, the supervisor runs it."""
    taps = allocate_taps({**desired, guest.name: guest}, interfaces, ledger)[guest.name]
    return boot_commands(
        guest,
        taps=taps,
        install=needs_install(guest, first_disk_bootable),
        guest_dir=guest_dir(ctx, guest.name),
        uefi_vars=uefi_vars_path(ctx, guest),
    )


def guest_dir(ctx: PlanContext, name: str) -> str:
    return posixpath.join(ctx.guests_dir, name)


def uefi_vars_path(ctx: PlanContext, guest: GuestSpec) -> str | None:
    """The guest's own copy of the UEFI variable store, when it keeps one."""
    if guest.loader != "uefi" or not guest.uefi.vars:
        return None
    return posixpath.join(guest_dir(ctx, guest.name), VARS_FILE)


def state_files(desired: Mapping[str, GuestSpec], ctx: PlanContext) -> list[str]:
    """The per-guest files of the daemon's own the plan wants (UEFI vars copies): what the
    driver must check exist, besides those the ledger lists."""
    return [p for g in desired.values() if (p := uefi_vars_path(ctx, g)) is not None]


def vars_template(guest: GuestSpec) -> str:
    return posixpath.join(posixpath.dirname(guest.uefi.firmware), VARS_FILE)


def allocate_taps(
    desired: Mapping[str, GuestSpec], interfaces: Iterable[str], ledger: Ledger
) -> dict[str, tuple[str, ...]]:
    """The tap of every NIC of every guest. A NIC without a `tap` key keeps the tap it was given
    before (the ledger remembers it); new ones get the lowest free `tapN`."""
    explicit = {n.tap for g in desired.values() for n in g.nics if n.tap}
    taken = set(interfaces) | explicit | set(ledger.interfaces)
    result: dict[str, tuple[str, ...]] = {}
    for name in sorted(desired):
        guest = desired[name]
        pool = [t for t in ledger.taps_of(name) if t not in explicit]
        taps: list[str] = []
        for nic in guest.nics:
            if nic.tap:
                taps.append(nic.tap)
            elif pool:
                taps.append(pool.pop(0))
            else:
                n = 0
                while f"tap{n}" in taken:
                    n += 1
                taken.add(f"tap{n}")
                taps.append(f"tap{n}")
        result[name] = tuple(taps)
    return result


def guests_holding_taps(
    desired: Mapping[str, GuestSpec],
    facts: HostFacts,
    ledger: Ledger,
    vms: Iterable[str] | None = None,
) -> dict[str, int]:
    """Guests (among `vms`, default every VM) whose VM exists while one of their taps is held
    open: some bhyve runs them, whoever started it (vmrun.sh, say). name -> the holding pid."""
    taps = allocate_taps(desired, facts.interfaces, ledger)
    held: dict[str, int] = {}
    for vm in facts.vms if vms is None else vms:
        for tap in (*taps.get(vm, ()), *ledger.taps_of(vm)):
            iface = facts.interfaces.get(tap)
            if iface is not None and iface.opened_by is not None:
                held[vm] = iface.opened_by
                break
    return held


def plan_actions(
    desired: Mapping[str, GuestSpec],
    facts: HostFacts,
    ledger: Ledger,
    ctx: PlanContext | None = None,
) -> list[Action]:
    """Ordered actions: modules, sysctl, bridges, taps, membership, up, disks, guests, then
    the undoing of what the ledger holds for guests (or NICs and disks) that are gone."""
    ctx = ctx or PlanContext()
    ifs = facts.interfaces
    taps = allocate_taps(desired, ifs, ledger)
    guests = sorted(desired.values(), key=lambda g: (g.lifecycle.order, g.name))
    out: list[Action] = []
    keys_of: dict[str, list[str]] = {name: [] for name in desired}  # per-guest prerequisites

    def add(action: Action, *for_guests: str) -> None:
        out.append(action)
        for g in for_guests:
            keys_of[g].append(action.key)

    all_guests = tuple(desired)

    # Host preparation, as in the Handbook: vmm (+ nmdm for null-modem consoles), up_on_open.
    modules = ["vmm"] + (["nmdm"] if any(g.uses_nmdm for g in guests) else [])
    for module in modules:
        if module not in facts.modules:
            needing = all_guests if module == "vmm" else [g.name for g in guests if g.uses_nmdm]
            add(LoadModule(module=module), *needing)
    if facts.sysctls.get(UP_ON_OPEN) != "1":
        add(
            SetSysctl(name=UP_ON_OPEN, value="1", current=facts.sysctls.get(UP_ON_OPEN)),
            *all_guests,
        )

    # Bridges: the config's uplink bridges first, then every bridge a NIC names.
    users_of: dict[str, list[str]] = {b: [] for b in sorted(ctx.uplinks)}
    for g in guests:
        for nic in g.nics:
            if nic.bridge:
                users_of.setdefault(nic.bridge, [])
                if g.name not in users_of[nic.bridge]:
                    users_of[nic.bridge].append(g.name)
    created: set[str] = set()
    for bridge, users in users_of.items():
        if bridge not in ifs:
            owner = None if bridge in ctx.uplinks else users[0]
            add(CreateInterface(name=bridge, kind="bridge", guest=owner), *users)
            created.add(bridge)

    # Taps.
    for g in guests:
        for tap in taps[g.name]:
            if tap not in ifs:
                add(CreateInterface(name=tap, kind="tap", guest=g.name), g.name)
                created.add(tap)

    def needs(*names: str) -> tuple[str, ...]:
        return tuple(f"interface:{n}" for n in names if n in created)

    # Membership: first undo a move (a tap the ledger put in another bridge), then add.
    wanted_members = {
        (nic.bridge, tap): g.name
        for g in guests
        for nic, tap in zip(g.nics, taps[g.name], strict=True)
        if nic.bridge
    }
    live_taps = {tap: g.name for g in guests for tap in taps[g.name]}
    # Memberships leaving a bridge this pass: a bridge they empty can go in the same pass.
    removing: set[tuple[str, str]] = set()
    for (bridge, member), owner in sorted(ledger.members.items()):
        moved = member in live_taps and (bridge, member) not in wanted_members
        if moved and member in _members(facts, bridge):
            removing.add((bridge, member))
            add(RemoveMember(bridge=bridge, member=member, guest=owner), live_taps[member])
    for bridge, members in sorted(ctx.uplinks.items()):
        for member in members:
            if member not in _members(facts, bridge):
                add(AddMember(bridge=bridge, member=member, requires=needs(bridge)))
    for (bridge, tap), owner in wanted_members.items():
        if tap not in _members(facts, bridge):
            add(
                AddMember(bridge=bridge, member=tap, guest=owner, requires=needs(bridge, tap)),
                owner,
            )

    # Up: every bridge we need.
    for bridge, users in users_of.items():
        iface = ifs.get(bridge)
        if iface is None or not iface.up:
            add(InterfaceUp(name=bridge, requires=needs(bridge)), *users)

    # Disks: created when missing and sized; never over an existing file, never shrunk, and
    # never under a running guest (its bhyve still has the old one open).
    for g in guests:
        for disk in g.disks:
            if disk.size is None or g.name in ctx.running:
                continue
            size_text = format_size(disk.size)
            if disk.path is not None:
                seen = facts.disks.get(disk.path)
                if seen is None or not seen.exists:
                    add(
                        CreateDiskFile(
                            path=disk.path, size=disk.size, size_text=size_text, guest=g.name
                        ),
                        g.name,
                    )
            elif disk.zvol is not None and facts.zvols is not None and disk.zvol not in facts.zvols:
                add(CreateZvol(zvol=disk.zvol, size_text=size_text, guest=g.name), g.name)
        vars_path = uefi_vars_path(ctx, g)
        if vars_path is not None and not facts.files.get(vars_path, False):
            add(CopyFile(source=vars_template(g), path=vars_path, guest=g.name), g.name)

    # Guests: stop what should not run (reverse order), clear stale VMs, start (by order).
    known = set(desired) | ledger.owners() | set(ledger.orders)
    stops: dict[str, str] = {}
    for name in ctx.running:
        if name not in desired and name in known:
            stops[name] = "its file is gone"
        elif name in desired and desired[name].lifecycle.state == "stopped":
            stops[name] = 'its file says state = "stopped"'

    def order_of(name: str) -> int:
        return desired[name].lifecycle.order if name in desired else ledger.orders.get(name, 0)

    for name in sorted(stops, key=lambda n: (-order_of(n), n)):
        out.append(StopGuest(name=name, reason=stops[name], order=order_of(name), guest=name))
    for vm in sorted(facts.vms):
        if vm in known and vm not in ctx.running:
            add(DestroyVM(name=vm, guest=vm), *([vm] if vm in desired else []))
    for g in guests:
        if g.lifecycle.state == "running" and g.name not in ctx.running:
            out.append(
                StartGuest(
                    name=g.name,
                    order=g.lifecycle.order,
                    guest=g.name,
                    requires=tuple(keys_of[g.name]),
                )
            )

    # Undo what the ledger holds and nothing wants any more, once its guest has stopped.
    def after_stop(owner: str) -> tuple[str, ...]:
        return (f"stop:{owner}",) if owner in stops else ()

    for (bridge, member), owner in sorted(ledger.members.items()):
        if member in live_taps:
            continue  # handled above as a move, or still wanted
        if member in _members(facts, bridge):
            removing.add((bridge, member))
            add(RemoveMember(bridge=bridge, member=member, guest=owner, requires=after_stop(owner)))
        else:
            add(Forget(kind="member", what=f"{bridge} {member}", guest=owner))
    for name, made in sorted(ledger.interfaces.items()):
        if name in live_taps or name in users_of:
            continue
        if name not in ifs:
            add(Forget(kind="interface", what=name, guest=made.guest))
            continue
        if made.kind == "bridge":
            left = [m for m in _members(facts, name) if (name, m) not in removing]
            if left:
                continue  # someone else's interfaces are in it: leave the bridge alone
            requires = tuple(f"remove-member:{name}:{m}" for m in _members(facts, name))
        else:
            requires = after_stop(made.guest) + tuple(
                f"remove-member:{b}:{m}" for b, m in sorted(removing) if m == name
            )
        add(
            DestroyInterface(
                name=name,
                kind="bridge" if made.kind == "bridge" else "tap",
                guest=made.guest,
                requires=requires,
            )
        )
    wanted_devices = {d.device for g in guests for d in g.disks}
    for path, owner in sorted(ledger.disks.items()):
        if path not in wanted_devices:
            add(Forget(kind="disk", what=path, guest=owner, requires=after_stop(owner)))
    wanted_files = {p for g in guests if (p := uefi_vars_path(ctx, g)) is not None}
    for path, owner in sorted(ledger.files.items()):
        if path not in wanted_files:
            add(Forget(kind="file", what=path, guest=owner, requires=after_stop(owner)))
    return out


def _members(facts: HostFacts, bridge: str) -> tuple[str, ...]:
    iface = facts.interfaces.get(bridge)
    return iface.members if iface is not None else ()
