"""Planning: the pure diff from desired state (specs) and observed state (facts) to actions.

`plan_actions(desired, facts, ledger, ctx)` returns a `Plan`: the ordered, idempotent actions
that make the host match (none when converged), the tap of every guest's NIC for this pass, and
which guests' starts wait for a fact that was not observed. It never runs, reads or writes
anything, so a dry run is free and every case is a table of values (tests/plan/).

The plan is made in phases, each a pure function of what it needs, concatenated in this order:
  1. host        kldload vmm, and nmdm, if_bridge, if_tuntap when guests need them and the
                 kernel lacks them (as vm-bhyve's `vm init`); net.link.tap.up_on_open=1 for
                 taps: the Handbook's preparation.
  2. bridges     the config's uplink bridges, then each bridge a NIC names: `addm` needs them.
  3. taps        every NIC's tap, from the pass's one allocation (`allocate_taps`).
  4. membership  a tap the ledger put in another bridge leaves it first (a tap is in one
                 bridge), then the uplinks join, then the guests' taps.
  5. up          each bridge that is needed, after its members are in.
  6. disks       missing sized images and zvols, per-guest UEFI variable copies; never under
                 a running guest (its bhyve holds the old disk open).
  7. guests      stops in reverse order (dependants go first), stale VMs, starts by order; a
                 start requires every earlier action its guest needs.
  8. undo        what the ledger holds and nothing wants any more, last: after the stop of the
                 guest that used it, and a bridge after its members left.

Failures stay local (DESIGN.md rule 8). Each observation may fail alone (`HostFacts.unobserved`);
the plan then plans nothing that needs it, names each guest whose start waits and why in
`Plan.blocked`, and plans everything else as usual:

  not observed          not planned                              starts that wait
  modules   (kldstat)   module loads                             every guest: vmm is unknown
  interfaces (ifconfig) every interface action: create, add and  guests with NICs
                        remove members, up, destroy, forget; a
                        stale VM whose guest has taps (a bhyve
                        outside may hold one)
  zvols     (zfs list)  zvol creation                            guests with a zvol disk
  vms       (vmm_dir)   stale-VM destruction                     every guest: a bhyve outside
                                                                 may run it
  disks     (a stat)    the creation of a disk not seen          its guest

Stops, the sysctl, disk images, UEFI copies and forgetting a gone guest's disks and files need
none of these facts: they are planned whatever failed. (A failed sysctl read counts as unset,
as FreeBSD says `unknown oid` until if_tap is loaded: the write is planned, starts wait on it.)

Phases 1, 6 and the undo of disks and files are here; the interface and guest phases are in
plan_phases.py. Which phase waits for which is typed: an action `requires` the `Key`s of
earlier actions (`CreateInterface.key_of("tap0")`), and a start requires every key its guest's
`Step`s provide.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from reconciler.actions import (
    Action,
    CopyFile,
    CreateDiskFile,
    CreateZvol,
    Forget,
    LoadModule,
    RemoveMember,
    SetSysctl,
)
from reconciler.bhyve import BootCommands, boot_commands, needs_install
from reconciler.config import DaemonConfig
from reconciler.facts import HostFacts
from reconciler.ledger import Ledger
from reconciler.plan_phases import (
    Interfaces,
    Member,
    Step,
    Taps,
    after_stop,
    blocked_starts,
    bridge_users,
    live_taps,
    network_phases,
    stale_vm_phase,
    start_phase,
    stop_phase,
    stops_wanted,
    undo_interfaces,
    undo_members,
)
from reconciler.spec import Disk, GuestSpec
from reconciler.units import format_size

__all__ = [
    "UP_ON_OPEN",
    "Plan",
    "PlanContext",
    "Step",
    "Taps",
    "allocate_taps",
    "disks_phase",
    "guest_dir",
    "guests_holding_taps",
    "host_phase",
    "next_boot",
    "plan_actions",
    "plan_context",
    "state_files",
    "uefi_vars_path",
    "undo_files",
    "undo_phase",
    "vars_template",
]

UP_ON_OPEN = "net.link.tap.up_on_open"
VARS_FILE = "BHYVE_UEFI_VARS.fd"


@dataclass(frozen=True)
class PlanContext:
    """What planning needs besides specs, facts and ledger: the daemon config's uplinks and
    where per-guest state lives."""

    uplinks: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    guests_dir: str = "/var/db/bhyve-reconciler/guests"
    running: frozenset[str] = frozenset()  # guests with a live bhyve (or loader)


@dataclass(frozen=True)
class Plan:
    """One pass's plan: the actions in order, the taps they were planned with (what the
    pass's boots use), and the guests whose start waits for an unobserved fact, with why."""

    actions: tuple[Action, ...] = ()
    taps: Taps = field(default_factory=dict)
    blocked: Mapping[str, str] = field(default_factory=dict)


def plan_context(config: DaemonConfig, running: frozenset[str] = frozenset()) -> PlanContext:
    """The planning context a daemon config gives."""
    return PlanContext(
        uplinks=config.bridges, guests_dir=str(config.state_dir / "guests"), running=running
    )


def next_boot(
    guest: GuestSpec, *, taps: Sequence[str], ctx: PlanContext, first_disk_bootable: bool
) -> BootCommands:
    """What the guest's next boot runs: `commands NAME` prints it, the supervisor runs it.
    `taps` are the guest's taps from its pass (`Plan.taps[name]`); none are allocated here."""
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
    desired: Mapping[str, GuestSpec], interfaces: Iterable[str] | None, ledger: Ledger
) -> dict[str, tuple[str, ...]]:
    """The tap of every NIC of every guest: call once per pass. A NIC without a `tap` key
    keeps the tap it was given before (the ledger remembers it); new ones get the lowest
    `tapN` that is no explicit tap, no interface and nothing the ledger holds. With
    `interfaces` unobserved (None) a new tap may be taken already: its guest waits anyway."""
    explicit = {n.tap for g in desired.values() for n in g.nics if n.tap}
    taken = set(interfaces or ()) | explicit | set(ledger.interfaces)
    result: dict[str, tuple[str, ...]] = {}
    for name in sorted(desired):
        pool = [t for t in ledger.taps_of(name) if t not in explicit]
        taps: list[str] = []
        for nic in desired[name].nics:
            tap = nic.tap or (pool.pop(0) if pool else _lowest_free_tap(taken))
            taken.add(tap)
            taps.append(tap)
        result[name] = tuple(taps)
    return result


def _lowest_free_tap(taken: set[str]) -> str:
    n = 0
    while f"tap{n}" in taken:
        n += 1
    return f"tap{n}"


def guests_holding_taps(
    facts: HostFacts, ledger: Ledger, taps: Taps, vms: Iterable[str] | None = None
) -> dict[str, int]:
    """Guests (among `vms`, default every VM) whose VM exists while one of their taps (the
    pass's `taps`, or the ledger's) is held open: some bhyve runs them, whoever started it
    (vmrun.sh, say). name -> the holding pid. Nothing is known with interfaces unobserved."""
    interfaces = facts.interfaces
    candidates = facts.vms if vms is None else vms
    if interfaces is None or candidates is None:
        return {}
    held: dict[str, int] = {}
    for vm in candidates:
        for tap in (*taps.get(vm, ()), *ledger.taps_of(vm)):
            iface = interfaces.get(tap)
            if iface is not None and iface.opened_by is not None:
                held[vm] = iface.opened_by
                break
    return held


def plan_actions(
    desired: Mapping[str, GuestSpec],
    facts: HostFacts,
    ledger: Ledger,
    ctx: PlanContext | None = None,
    *,
    taps: Taps | None = None,
) -> Plan:
    """The pass's plan, phase by phase (see the module docstring). `taps` is the pass's
    allocation when the caller made it already (it needed them before planning, to find
    guests run from outside); otherwise it is made here, once."""
    ctx = ctx or PlanContext()
    taps = allocate_taps(desired, facts.interfaces, ledger) if taps is None else taps
    guests = sorted(desired.values(), key=_boot_order)
    steps = [
        *host_phase(guests, facts, ctx.uplinks),
        *network_phases(guests, facts.interfaces, ledger, ctx.uplinks, taps),
        *disks_phase(guests, facts, ctx),
    ]
    stops = stops_wanted(desired, ledger, ctx.running)
    vm_steps = stale_vm_phase(desired, facts, ledger, ctx.running, taps)
    blocked = blocked_starts(guests, facts, ctx.running)
    actions = [s.action for s in steps]
    moved = frozenset((a.bridge, a.member) for a in actions if isinstance(a, RemoveMember))
    actions += [
        *stop_phase(stops, desired, ledger),
        *(s.action for s in vm_steps),
        *start_phase(guests, ctx.running, blocked, [*steps, *vm_steps]),
        *undo_phase(guests, facts.interfaces, ledger, ctx, taps, stops, moved),
    ]
    return Plan(actions=tuple(actions), taps=taps, blocked=blocked)


def _boot_order(guest: GuestSpec) -> tuple[int, str]:
    return (guest.lifecycle.order, guest.name)


# -- 1. host ------------------------------------------------------------------------------------


# Kernel modules and the names that show each present: if_tuntap was if_tap before 13.0, and
# GENERIC has it compiled in (kldstat -v lists its modules); if_bridge and nmdm are modules.
_MODULES_PRESENT_AS: dict[str, frozenset[str]] = {
    "vmm": frozenset({"vmm"}),
    "if_tuntap": frozenset({"if_tuntap", "if_tap"}),
    "if_bridge": frozenset({"if_bridge"}),
    "nmdm": frozenset({"nmdm"}),
}


def host_phase(
    guests: Sequence[GuestSpec], facts: HostFacts, uplinks: Mapping[str, tuple[str, ...]]
) -> list[Step]:
    """The kernel modules guests need and the kernel lacks, as vm-bhyve's `vm init` loads them
    (vmm; if_tuntap for taps; if_bridge for bridges, the config's uplink bridges too; nmdm for
    null-modem consoles), then taps that come up on open. The sysctl exists only once if_tuntap
    is in the kernel (reference §8.7): it waits for that load, and is set only for taps."""
    everyone = tuple(g.name for g in guests)
    tapped = tuple(g.name for g in guests if g.nics)
    bridged = tuple(sorted({n for users in bridge_users(guests, uplinks).values() for n in users}))
    wanted = {  # vm-bhyve's order (lib/vm-util util::setup, after vmm)
        "vmm": everyone,
        "nmdm": tuple(g.name for g in guests if g.uses_nmdm),
        "if_bridge": bridged,
        "if_tuntap": tapped,
    }
    # vmm is loaded even for no guest (the Handbook's first step); an uplink bridge is wanted
    # by the config itself.
    needed = [m for m, by in wanted.items() if by or m == "vmm" or (m == "if_bridge" and uplinks)]
    steps: list[Step] = []
    loading: set[str] = set()
    if facts.modules is not None:
        for module in needed:
            if not _MODULES_PRESENT_AS[module] & facts.modules:
                steps.append(Step(LoadModule(module=module), wanted[module]))
                loading.add(module)
    current = facts.sysctls.get(UP_ON_OPEN)
    if tapped and current != "1":
        after = (LoadModule.key_of("if_tuntap"),) if "if_tuntap" in loading else ()
        sysctl = SetSysctl(name=UP_ON_OPEN, value="1", current=current, requires=after)
        steps.append(Step(sysctl, tapped))
    return steps


# -- 6. disks -------------------------------------------------------------------------------


def disks_phase(guests: Sequence[GuestSpec], facts: HostFacts, ctx: PlanContext) -> list[Step]:
    """Disks created when missing and sized: never over an existing file, never shrunk, never
    under a running guest; and each UEFI variable store copied once."""
    steps: list[Step] = []
    for g in guests:
        if g.name not in ctx.running:
            made = (_disk_action(g.name, d, facts) for d in g.disks)
            steps += [Step(a, (g.name,)) for a in made if a is not None]
        vars_path = uefi_vars_path(ctx, g)
        if vars_path is not None and not facts.files.get(vars_path, False):
            copy = CopyFile(source=vars_template(g), path=vars_path, guest=g.name)
            steps.append(Step(copy, (g.name,)))
    return steps


def _disk_action(guest: str, disk: Disk, facts: HostFacts) -> Action | None:
    if disk.size is None:
        return None
    size_text = format_size(disk.size)
    if disk.path is not None:
        seen = facts.disks.get(disk.path)
        if seen is None and "disks" in facts.unobserved:
            return None  # its stat failed: whether it exists is unknown
        if seen is None or not seen.exists:
            return CreateDiskFile(path=disk.path, size=disk.size, size_text=size_text, guest=guest)
        return None
    if disk.zvol is not None and facts.zvols is not None and disk.zvol not in facts.zvols:
        return CreateZvol(zvol=disk.zvol, size_text=size_text, guest=guest)
    return None


# -- 8. undo --------------------------------------------------------------------------------


def undo_phase(
    guests: Sequence[GuestSpec],
    interfaces: Interfaces | None,
    ledger: Ledger,
    ctx: PlanContext,
    taps: Taps,
    stops: Mapping[str, str],
    moved: frozenset[Member],
) -> list[Action]:
    """Undo what the ledger holds and nothing wants any more, once its guest has stopped."""
    actions: list[Action] = []
    if interfaces is not None:
        live = live_taps(guests, taps)
        left = undo_members(ledger, interfaces, live, stops)
        removing = moved | {(a.bridge, a.member) for a in left if isinstance(a, RemoveMember)}
        wanted = live.keys() | bridge_users(guests, ctx.uplinks).keys()
        actions += [*left, *undo_interfaces(ledger, interfaces, wanted, removing, stops)]
    return actions + undo_files(guests, ledger, ctx, stops)


def undo_files(
    guests: Sequence[GuestSpec], ledger: Ledger, ctx: PlanContext, stops: Mapping[str, str]
) -> list[Action]:
    """Disks and files nothing wants are forgotten, never deleted."""
    devices = {d.device for g in guests for d in g.disks}
    files = {p for g in guests if (p := uefi_vars_path(ctx, g)) is not None}
    forgets: list[Action] = []
    for path, owner in sorted(ledger.disks.items()):
        if path not in devices:
            forgets.append(
                Forget(kind="disk", what=path, guest=owner, requires=after_stop(stops, owner))
            )
    for path, owner in sorted(ledger.files.items()):
        if path not in files:
            forgets.append(
                Forget(kind="file", what=path, guest=owner, requires=after_stop(stops, owner))
            )
    return forgets
