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
  6. disks       missing disks (empty, copied from an image, cloned from a snapshot), disks
                 grown to `size`, cloud-init seeds, per-guest UEFI variable copies; never
                 under a running guest (its bhyve holds the old disk open): plan_disks.py.
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
  snapshots (zfs list   the clone of a missing zvol              its guest
            -t snapshot)

Stops, the sysctl, disk images, UEFI copies and forgetting a gone guest's disks and files need
none of these facts: they are planned whatever failed. (A failed sysctl read counts as unset,
as FreeBSD says `unknown oid` until if_tap is loaded: the write is planned, starts wait on it.)

Phase 1 and the undo of disks and files are here; the interface and guest phases are in
plan_phases.py, the disks phase in plan_disks.py. Which phase waits for which is typed: an
action `requires` the `Key`s of earlier actions (`CreateInterface.key_of("tap0")`), and a start
requires every key its guest's `Step`s provide.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from reconciler.actions import (
    Action,
    Forget,
    LoadModule,
    RemoveMember,
    SetSysctl,
)
from reconciler.bhyve import BootCommands, boot_commands, needs_install
from reconciler.config import DaemonConfig
from reconciler.facts import HostFacts
from reconciler.ledger import Ledger
from reconciler.plan_disks import (
    disks_phase,
    guest_state_dir,
    needs_preparation,
    seed_files,
    seed_image,
    uefi_vars_file,
    vars_template,
)
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
from reconciler.spec import GuestSpec

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
    "needs_preparation",
    "next_boot",
    "plan_actions",
    "plan_context",
    "seed_files",
    "seed_path",
    "state_files",
    "uefi_vars_path",
    "undo_files",
    "undo_phase",
    "vars_template",
]

UP_ON_OPEN = "net.link.tap.up_on_open"


@dataclass(frozen=True)
class PlanContext:
    """What planning needs besides specs, facts and ledger: the daemon config's uplinks and
    where per-guest state lives."""

    uplinks: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    guests_dir: str = "/var/db/bhyve-reconciler/guests"
    running: frozenset[str] = frozenset()  # guests with a live bhyve (or loader)
    held: frozenset[str] = frozenset()  # guests an operator stopped and holds: not started
    # Of `running`, those between two boots (a reboot keeps the VM, no process runs): their
    # disks and seed may be made ready for the next boot.
    rebooting: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Plan:
    """One pass's plan: the actions in order, the taps they were planned with (what the
    pass's boots use), the guests whose start waits (for an unobserved fact, an image, a copy),
    with why, and warnings (a `size` smaller than its disk, a stopped guest's missing image)."""

    actions: tuple[Action, ...] = ()
    taps: Taps = field(default_factory=dict)
    blocked: Mapping[str, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()  # what is not as the files say and will not be made so


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
        seed=seed_path(ctx, guest),
    )


def guest_dir(ctx: PlanContext, name: str) -> str:
    return guest_state_dir(ctx.guests_dir, name)


def uefi_vars_path(ctx: PlanContext, guest: GuestSpec) -> str | None:
    """The guest's UEFI variable store, when it keeps one: its `vars_file`, else its copy."""
    if guest.loader != "uefi" or not guest.uefi.vars:
        return None
    return guest.uefi.vars_file or uefi_vars_file(ctx.guests_dir, guest)


def vars_copy(ctx: PlanContext, guest: GuestSpec) -> str | None:
    """The daemon's own copy of the guest's UEFI variable store (none with a `vars_file`)."""
    return uefi_vars_file(ctx.guests_dir, guest)


def seed_path(ctx: PlanContext, guest: GuestSpec) -> str | None:
    """The guest's cloud-init seed CD, when it has a `[cloud_init]`."""
    return seed_image(ctx.guests_dir, guest)


def state_files(desired: Mapping[str, GuestSpec], ctx: PlanContext) -> list[str]:
    """The per-guest files of the daemon's own the plan wants (UEFI vars copies): what the
    driver must check exist, besides those the ledger lists."""
    return [p for g in desired.values() if (p := vars_copy(ctx, g)) is not None]


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
    busy = ctx.running - ctx.rebooting
    disks = disks_phase(guests, facts, guests_dir=ctx.guests_dir, running=busy)
    steps = [
        *host_phase(guests, facts, ctx.uplinks),
        *network_phases(guests, facts.interfaces, ledger, ctx.uplinks, taps),
        *disks.steps,
    ]
    stops = stops_wanted(desired, ledger, ctx.running)
    vm_steps = stale_vm_phase(desired, facts, ledger, ctx.running, taps)
    blocked = blocked_starts(guests, facts, ctx.running)
    warnings = list(disks.warnings)
    for name, why in disks.waits.items():
        if desired[name].lifecycle.state == "running":
            blocked[name] = f"{blocked[name]}; {why}" if name in blocked else why
        else:
            warnings.append(f"guest {name}: {why}")
    actions = [s.action for s in steps]
    moved = frozenset((a.bridge, a.member) for a in actions if isinstance(a, RemoveMember))
    actions += [
        *stop_phase(stops, desired, ledger),
        *(s.action for s in vm_steps),
        *start_phase(guests, ctx.running | ctx.held, blocked, [*steps, *vm_steps]),
        *undo_phase(guests, facts.interfaces, ledger, ctx, taps, stops, moved),
    ]
    return Plan(actions=tuple(actions), taps=taps, blocked=blocked, warnings=tuple(warnings))


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
    files = {p for g in guests if (p := vars_copy(ctx, g)) is not None}
    files |= {p for g in guests if (p := seed_path(ctx, g)) is not None}
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
