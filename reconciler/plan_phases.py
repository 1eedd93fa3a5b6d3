"""The phases of a plan that reason about interfaces and guest processes (see reconciler/plan.py
for the order of all phases and the rule for facts that were not observed).

Every function here is pure: plain values in, a list of `Step`s or actions out, no phase
calling another's internals. `Step` pairs an action with the guests whose start waits for it,
which is how a start's `requires` is built without any phase knowing about starts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from reconciler.actions import (
    Action,
    AddMember,
    CreateInterface,
    DestroyInterface,
    DestroyVM,
    Forget,
    InterfaceUp,
    Key,
    RemoveMember,
    StartGuest,
    StopGuest,
)
from reconciler.facts import HostFacts, Interface, Observation
from reconciler.ledger import Ledger
from reconciler.spec import GuestSpec

Taps = Mapping[str, tuple[str, ...]]  # guest -> the tap of each of its NICs, in `nics` order
Interfaces = Mapping[str, Interface]
Member = tuple[str, str]  # (bridge, member)

# What each observation is, for a person reading why a guest waits.
_OBSERVED_WHAT: dict[Observation, str] = {
    "modules": "kernel modules",
    "interfaces": "network interfaces",
    "zvols": "ZFS volumes",
    "vms": "VMs in vmm_dir",
    "disks": "disk images",
    "snapshots": "ZFS snapshots",
}


@dataclass(frozen=True)
class Step:
    """A phase's action, and the guests whose start must wait for it."""

    action: Action
    needed_by: tuple[str, ...] = ()


def live_taps(guests: Sequence[GuestSpec], taps: Taps) -> dict[str, str]:
    """Every tap a desired guest uses -> that guest."""
    return {tap: g.name for g in guests for tap in taps[g.name]}


def after_stop(stops: Mapping[str, str], owner: str) -> tuple[Key, ...]:
    """What undoing a guest's things waits for: its stop, when one is planned."""
    return (StopGuest.key_of(owner),) if owner in stops else ()


# -- 2-5. bridges, taps, membership, up ------------------------------------------------------


def network_phases(
    guests: Sequence[GuestSpec],
    interfaces: Interfaces | None,
    ledger: Ledger,
    uplinks: Mapping[str, tuple[str, ...]],
    taps: Taps,
) -> list[Step]:
    """Bridges, taps, membership and up, in that order; nothing when interfaces are unknown."""
    if interfaces is None:
        return []
    users_of = bridge_users(guests, uplinks)
    made = [*bridges_phase(users_of, interfaces, uplinks), *taps_phase(guests, taps, interfaces)]
    created = frozenset(s.action.name for s in made if isinstance(s.action, CreateInterface))
    return [
        *made,
        *membership_phase(guests, taps, interfaces, ledger, uplinks, created),
        *up_phase(users_of, interfaces, created),
    ]


def bridge_users(
    guests: Sequence[GuestSpec], uplinks: Mapping[str, tuple[str, ...]]
) -> dict[str, tuple[str, ...]]:
    """Every bridge wanted -> the guests with a NIC in it: the uplinks' first, then by NIC."""
    users: dict[str, list[str]] = {b: [] for b in sorted(uplinks)}
    for g in guests:
        for nic in g.nics:
            if nic.bridge and g.name not in users.setdefault(nic.bridge, []):
                users[nic.bridge].append(g.name)
    return {b: tuple(names) for b, names in users.items()}


def bridges_phase(
    users_of: Mapping[str, tuple[str, ...]],
    interfaces: Interfaces,
    uplinks: Mapping[str, tuple[str, ...]],
) -> list[Step]:
    """Missing bridges; an uplink bridge belongs to the config, any other to its first user."""
    return [
        Step(
            CreateInterface(name=b, kind="bridge", guest=None if b in uplinks else users[0]), users
        )
        for b, users in users_of.items()
        if b not in interfaces
    ]


def taps_phase(guests: Sequence[GuestSpec], taps: Taps, interfaces: Interfaces) -> list[Step]:
    return [
        Step(CreateInterface(name=tap, kind="tap", guest=g.name), (g.name,))
        for g in guests
        for tap in taps[g.name]
        if tap not in interfaces
    ]


def membership_phase(
    guests: Sequence[GuestSpec],
    taps: Taps,
    interfaces: Interfaces,
    ledger: Ledger,
    uplinks: Mapping[str, tuple[str, ...]],
    created: frozenset[str],
) -> list[Step]:
    """A moved tap leaves the bridge the ledger put it in; then uplinks and taps join."""
    wanted = _wanted_members(guests, taps)
    live = live_taps(guests, taps)
    steps = [
        Step(RemoveMember(bridge=bridge, member=member, guest=owner), (live[member],))
        for (bridge, member), owner in sorted(ledger.members.items())
        if member in live
        and (bridge, member) not in wanted
        and member in _members(interfaces, bridge)
    ]
    steps += [
        Step(AddMember(bridge=bridge, member=m, requires=_created_keys(created, bridge)))
        for bridge, members in sorted(uplinks.items())
        for m in members
        if m not in _members(interfaces, bridge)
    ]
    steps += [
        Step(
            AddMember(
                bridge=bridge, member=tap, guest=owner, requires=_created_keys(created, bridge, tap)
            ),
            (owner,),
        )
        for (bridge, tap), owner in wanted.items()
        if tap not in _members(interfaces, bridge)
    ]
    return steps


def up_phase(
    users_of: Mapping[str, tuple[str, ...]], interfaces: Interfaces, created: frozenset[str]
) -> list[Step]:
    return [
        Step(InterfaceUp(name=bridge, requires=_created_keys(created, bridge)), users)
        for bridge, users in users_of.items()
        if (iface := interfaces.get(bridge)) is None or not iface.up
    ]


def _created_keys(created: frozenset[str], *names: str) -> tuple[Key, ...]:
    """What waits for interfaces this pass creates (one that exists needs no wait)."""
    return tuple(CreateInterface.key_of(n) for n in names if n in created)


def _wanted_members(guests: Sequence[GuestSpec], taps: Taps) -> dict[Member, str]:
    return {
        (nic.bridge, tap): g.name
        for g in guests
        for nic, tap in zip(g.nics, taps[g.name], strict=True)
        if nic.bridge
    }


def _members(interfaces: Interfaces, bridge: str) -> tuple[str, ...]:
    iface = interfaces.get(bridge)
    return iface.members if iface is not None else ()


# -- 7. guests ------------------------------------------------------------------------------


def _known(desired: Mapping[str, GuestSpec], ledger: Ledger) -> set[str]:
    """Guests of ours: desired, or something on the host still belongs to them."""
    return set(desired) | ledger.owners() | set(ledger.orders)


def _order_of(name: str, desired: Mapping[str, GuestSpec], ledger: Ledger) -> int:
    return desired[name].lifecycle.order if name in desired else ledger.orders.get(name, 0)


def stops_wanted(
    desired: Mapping[str, GuestSpec], ledger: Ledger, running: frozenset[str]
) -> dict[str, str]:
    """Running guests of ours that should not run -> why."""
    known = _known(desired, ledger)
    stops: dict[str, str] = {}
    for name in running:
        if name not in desired and name in known:
            stops[name] = "its file is gone"
        elif name in desired and desired[name].lifecycle.state == "stopped":
            stops[name] = 'its file says state = "stopped"'
    return stops


def stop_phase(
    stops: Mapping[str, str], desired: Mapping[str, GuestSpec], ledger: Ledger
) -> list[Action]:
    """In reverse boot order, so what depends on a guest goes before it."""
    order = sorted(stops, key=lambda n: (-_order_of(n, desired, ledger), n))
    return [
        StopGuest(name=n, reason=stops[n], order=_order_of(n, desired, ledger), guest=n)
        for n in order
    ]


def stale_vm_phase(
    desired: Mapping[str, GuestSpec],
    facts: HostFacts,
    ledger: Ledger,
    running: frozenset[str],
    taps: Taps,
) -> list[Step]:
    """A VM of ours that no bhyve runs is destroyed, so its guest boots clean."""
    if facts.vms is None:
        return []
    known = _known(desired, ledger)
    steps: list[Step] = []
    for vm in sorted(facts.vms):
        if vm not in known or vm in running:
            continue
        if facts.interfaces is None and (taps.get(vm) or ledger.taps_of(vm)):
            continue  # a bhyve from outside may hold its tap: cannot tell it is stale
        steps.append(Step(DestroyVM(name=vm, guest=vm), (vm,) if vm in desired else ()))
    return steps


def blocked_starts(
    guests: Sequence[GuestSpec], facts: HostFacts, running: frozenset[str]
) -> dict[str, str]:
    """Guests that would start but need a fact that was not observed -> what they wait for."""
    blocked: dict[str, str] = {}
    for g in guests:
        if g.lifecycle.state != "running" or g.name in running:
            continue
        missing = [_why_unobserved(facts, obs) for obs in _start_needs(g, facts)]
        if reasons := [m for m in missing if m is not None]:
            blocked[g.name] = "; ".join(reasons)
    return blocked


def _start_needs(guest: GuestSpec, facts: HostFacts) -> list[Observation]:
    """The observations a start of `guest` needs (the table in the module docstring)."""
    needs: list[Observation] = ["modules", "vms"]
    if guest.nics:
        needs.append("interfaces")
    if any(d.zvol for d in guest.disks):
        needs.append("zvols")
    if any(
        d.path and (d.size is not None or d.source) and d.path not in facts.disks
        for d in guest.disks
    ):
        needs.append("disks")
    return needs


def _why_unobserved(facts: HostFacts, obs: Observation) -> str | None:
    missing = {
        "modules": facts.modules is None,
        "interfaces": facts.interfaces is None,
        "zvols": facts.zvols is None,
        "vms": facts.vms is None,
        "disks": "disks" in facts.unobserved,
    }[obs]
    if not missing:
        return None
    return f"{_OBSERVED_WHAT[obs]} not observed: {facts.unobserved.get(obs, 'not asked for')}"


def start_phase(
    guests: Sequence[GuestSpec],
    running: frozenset[str],
    blocked: Mapping[str, str],
    steps: Sequence[Step],
) -> list[Action]:
    """By order; each start requires what its guest needs from the earlier phases."""
    needs: dict[str, list[Key]] = {}
    for step in steps:
        for name in step.needed_by:
            needs.setdefault(name, []).append(step.action.key)
    return [
        StartGuest(
            name=g.name,
            order=g.lifecycle.order,
            guest=g.name,
            requires=tuple(needs.get(g.name, ())),
        )
        for g in guests
        if g.lifecycle.state == "running" and g.name not in running and g.name not in blocked
    ]


# -- 8. undo, of interfaces and memberships --------------------------------------------------


def undo_members(
    ledger: Ledger, interfaces: Interfaces, live: Mapping[str, str], stops: Mapping[str, str]
) -> list[Action]:
    """Memberships of taps no guest uses (a live tap's move is the membership phase's)."""
    actions: list[Action] = []
    for (bridge, member), owner in sorted(ledger.members.items()):
        if member in live:
            continue
        if member in _members(interfaces, bridge):
            after = after_stop(stops, owner)
            actions.append(RemoveMember(bridge=bridge, member=member, guest=owner, requires=after))
        else:
            actions.append(Forget(kind="member", what=f"{bridge} {member}", guest=owner))
    return actions


def undo_interfaces(
    ledger: Ledger,
    interfaces: Interfaces,
    wanted: Iterable[str],
    removing: frozenset[Member],
    stops: Mapping[str, str],
) -> list[Action]:
    """Taps and bridges of ours nothing wants; a bridge only once nothing foreign is in it."""
    actions: list[Action] = []
    keep = set(wanted)
    for name, made in sorted(ledger.interfaces.items()):
        if name in keep:
            continue
        if name not in interfaces:
            actions.append(Forget(kind="interface", what=name, guest=made.guest))
            continue
        if made.kind == "bridge":
            members = _members(interfaces, name)
            if any((name, m) not in removing for m in members):
                continue  # someone else's interfaces are in it: leave the bridge alone
            requires = tuple(RemoveMember.key_of(name, m) for m in members)
        else:
            requires = after_stop(stops, made.guest) + tuple(
                RemoveMember.key_of(b, m) for b, m in sorted(removing) if m == name
            )
        kind: Literal["tap", "bridge"] = "bridge" if made.kind == "bridge" else "tap"
        actions.append(DestroyInterface(name=name, kind=kind, guest=made.guest, requires=requires))
    return actions
