"""One convergence pass: observe the host, plan, apply the host actions, settle the ledger.

The one pipeline behind `plan` (observe and plan: a dry run), `apply` and `run`, so the three
never drift. Edge wiring only: the decisions are `plan.py`'s, the commands the driver's, the
ledger's rules `ledger.py`'s. What it adds is order and safety:

- What runs is decided once per pass: the daemon's own supervisors (or, for a command that
  supervises nothing, the daemon's boot records checked against one process listing), plus
  any VM some other bhyve runs (vmrun.sh, another manager) — found from the same listing, NIC
  or not, and only when a VM is not accounted for. Such a guest is never booted a second time
  and its VM is never destroyed as stale.
- Placement and shared-storage locks come first, in one place for all three: only the guests
  placed on this host whose lock (if any) this host may hold are the pass's desired guests; the
  others are reported (`elsewhere`, `waiting`) and planned as if their files were absent.
- The ledger is written ahead: what the pass is about to create is recorded (durably) before
  it is created, and taken back when the action did not create it. A crash between the two
  leaks nothing; a full disk that refuses the write-ahead skips this pass's creations instead.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import structlog

from reconciler.actions import Action
from reconciler.bhyve import BootCommands
from reconciler.bootgate import BootGate
from reconciler.config import DaemonConfig
from reconciler.errors import NotReady
from reconciler.execute import Outcome, execute_actions
from reconciler.facts import HostFacts
from reconciler.host.copier import ImageCopier
from reconciler.host.files import save_ledger
from reconciler.host.freebsd import FreeBSDHost
from reconciler.host.guests import (
    ShimGuestOps,
    boot_is_live,
    list_processes,
    recorded_guests,
)
from reconciler.host.locks import SharedLocks
from reconciler.ledger import Ledger
from reconciler.placement import Placed, place, short_host_name
from reconciler.plan import (
    Plan,
    PlanContext,
    Taps,
    allocate_taps,
    guests_holding_taps,
    next_boot,
    plan_actions,
    plan_context,
    seed_files,
    state_files,
)
from reconciler.processes import ProcessTable
from reconciler.sharedlock import Waiting
from reconciler.spec import GuestSpec

log = structlog.get_logger("reconciler.converge")


@dataclass(frozen=True)
class PassResult:
    """What one pass saw and did. `outcomes` is empty for a dry run."""

    facts: HostFacts
    plan: Plan
    running: frozenset[str]  # guests with a live bhyve (or loader), ours or not
    foreign: Mapping[str, int] = field(default_factory=dict)  # guest -> a bhyve not ours
    held: frozenset[str] = frozenset()  # off and held by an operator's `stop`
    outcomes: tuple[Outcome, ...] = ()
    errors: tuple[str, ...] = ()  # for status and the log: unobserved facts, failed actions,
    # waiting and foreign guests
    desired: Mapping[str, GuestSpec] = field(default_factory=dict)  # this host's, this pass
    elsewhere: Mapping[str, str | None] = field(default_factory=dict)  # guest -> its host
    waiting: Mapping[str, Waiting] = field(default_factory=dict)  # placed here, lock elsewhere

    @property
    def actions(self) -> tuple[Action, ...]:
        return self.plan.actions

    @property
    def taps(self) -> Taps:
        return self.plan.taps

    @property
    def complete(self) -> bool:
        """Every fact was observed."""
        return not self.facts.unobserved

    @property
    def failed(self) -> tuple[Outcome, ...]:
        return tuple(o for o in self.outcomes if o.status in ("failed", "skipped"))

    @property
    def waits(self) -> dict[str, str]:
        """Guest -> why its boot waits: what `blocked` says, with the reason."""
        waits = dict(self.plan.blocked)
        for o in self.failed:
            if o.action.guest is not None and o.action.guest not in waits:
                waits[o.action.guest] = f"{o.action.describe()}: {o.error or 'skipped'}"
        return waits

    @property
    def blocked(self) -> frozenset[str]:
        """Guests whose boot waits: a fact it needs was not observed, or its host preparation
        failed this pass."""
        failed = (o.action.guest for o in self.failed if o.action.guest)
        return frozenset(self.plan.blocked) | frozenset(failed)


class Converger:
    """Holds what passes share: the driver, the config, the ledger and the last plan."""

    def __init__(
        self,
        host: FreeBSDHost,
        config: DaemonConfig,
        ledger: Ledger,
        locks: SharedLocks | None = None,
    ) -> None:
        self.host = host
        self.config = config
        self.ledger = ledger
        # Without the daemon's keeper (plan, apply): look at shared-storage locks, never write.
        self.locks = locks or SharedLocks(
            host_path=host.host_path, clock=time.monotonic, wall_clock=time.time, take=False
        )
        self._base = plan_context(config)
        self._last_plan: tuple[tuple[object, ...], Plan] | None = None
        self._taps: Taps = {}  # the last pass's: boots between passes use them
        # A boot waits for the pass that makes its disks and seed ready; `wants_pass` is told
        # when a boot waits for a spec no pass has looked at yet (the daemon runs one).
        self.gate = BootGate()
        self.wants_pass: Callable[[str], None] | None = None
        self._last_placed: tuple[tuple[object, ...], Placed] | None = None

    def start_copies(self, wake: Callable[[str], None]) -> None:
        """Large copies run beside the passes (a worker thread); a copy that ends, and a boot
        that waits for a pass to prepare it, ask for a pass through `wake(why)`."""
        self.host.copier = ImageCopier(
            on_done=lambda disk: wake(f"copied {disk}"),
            retry_after=self.config.resync_interval,
        )
        self.wants_pass = lambda name: wake(f"{name} waits")

    @property
    def host_name(self) -> str:
        """This host's name in guest files and locks: the config's, or `hostname -s`."""
        return self.config.host_name or short_host_name(socket.gethostname())

    def observe_and_plan(
        self,
        specs: Mapping[str, GuestSpec],
        supervised: frozenset[str] | None,
        between: frozenset[str] = frozenset(),
    ) -> PassResult:
        """Observe and plan, changing nothing on the host. `supervised`: the guests this process
        runs, or None for a command that runs none (their liveness then comes from boot
        records); `between`: those of them between two boots (a reboot keeps the VM, no process
        runs), whose disks and seed may be made ready for the next boot. `specs` are every
        accepted guest file; the pass's own are those placed here whose shared-storage lock
        this host may hold (a daemon's keeper takes and refreshes locks here, before anything
        is planned for their guests)."""
        placed = self._place(specs)
        desired, waiting = self.locks.admit(
            placed.here,
            supervised or frozenset(),
            me=self.host_name,
            interval=self.config.resync_interval,
        )
        known = frozenset(desired) | self.ledger.owners() | frozenset(self.ledger.orders)
        live = (supervised or frozenset()) - between
        facts = self.host.observe(
            desired,
            self.ledger,
            state_files=state_files(desired, self._base),
            running=live,
            seeds=seed_files(tuple(desired.values()), self._base.guests_dir, live),
        )
        taps = allocate_taps(desired, facts.interfaces, self.ledger)
        table: ProcessTable | None = None
        ours = supervised or frozenset()
        held: frozenset[str] = frozenset()
        if supervised is None and recorded_guests(self.config.run_dir):
            table = list_processes(self.host.runner)
            ours, held = self._from_records(table)
        unaccounted = (facts.vms or frozenset()) & known - ours
        # A VM whose tap some process holds open runs; the others need the process listing.
        foreign = guests_holding_taps(facts, self.ledger, taps, sorted(unaccounted))
        unaccounted -= foreign.keys()
        if unaccounted:
            bhyves = (table or list_processes(self.host.runner)).bhyves()
            foreign |= {vm: bhyves[vm] for vm in sorted(unaccounted) if vm in bhyves}
        running = ours | frozenset(foreign)
        ctx = replace(
            self._base, uplinks=self.config.bridges, running=running, held=held, rebooting=between
        )
        plan = self._plan(desired, facts, ctx, taps)
        self._taps = taps
        errors = [f"observe: {error}" for error in facts.unobserved.values()]
        errors += [f"guest {g} waits: {why}" for g, why in sorted(plan.blocked.items())]
        errors += [f"warning: {warning}" for warning in plan.warnings]
        errors += [
            f"guest {name} runs outside bhyve-reconciler (pid {pid} runs it): not adopted; "
            "stop it there and the reconciler takes over"
            for name, pid in sorted(foreign.items())
        ]
        return PassResult(
            facts,
            plan,
            running,
            foreign,
            held,
            errors=tuple(errors),
            desired=desired,
            elsewhere=placed.elsewhere,
            waiting=waiting,
        )

    def converge(
        self,
        specs: Mapping[str, GuestSpec],
        supervised: frozenset[str] | None,
        on_outcome: Callable[[Outcome], None] | None = None,
        between: frozenset[str] = frozenset(),
    ) -> PassResult:
        """One whole pass: observe, plan, apply the host actions, settle the ledger. Guest
        starts and stops come back pending: they belong to the supervisors, as do copies the
        driver runs in the background (their disks are claimed in the ledger all along)."""
        seen = self.observe_and_plan(specs, supervised, between)
        for fact, error in seen.facts.unobserved.items():
            log.error("host.observe_failed", fact=fact, error=error)
        desired = seen.desired
        before = self.ledger
        claims = [a for a in seen.actions if a.creates and before.after(a) != before]
        ahead = before
        for action in claims:
            ahead = ahead.after(action)
        errors = list(seen.errors)
        actions = seen.actions
        if ahead != before and not self._save(ahead, errors):
            # Unrecorded, a creation could leak: leave them all for a pass that can record them.
            skipped = {id(a) for a in claims}
            actions = tuple(a for a in actions if id(a) not in skipped)
            ahead = before
        report = execute_actions(actions, self.host.apply, ahead, on_outcome=on_outcome)
        ledger = ahead
        for outcome in report.outcomes:
            action = outcome.action
            if outcome.status == "done" or (outcome.status == "unchanged" and action.sign == "-"):
                ledger = ledger.after(action)
            elif action in claims and outcome.status != "pending":  # a copy runs on: kept
                ledger = ledger.without(action)
        ledger = ledger.with_orders({name: g.lifecycle.order for name, g in desired.items()})
        if ledger != self.ledger:
            self._save(ledger, errors)
        errors += [f"{o.action.describe()}: {o.error}" for o in report.outcomes if o.error]
        result = replace(seen, outcomes=tuple(report.outcomes), errors=tuple(errors))
        self.gate.note(desired, result.running - between, result.waits)
        return result

    def prepare_boot(self, spec: GuestSpec) -> BootCommands:
        """What the next boot of `spec` runs, from the last pass: its taps, and install mode
        from its first disk. `NotReady` while the pass has not made what the reconciler creates
        for it (its taps, its disks, copied, cloned or grown, its seed): it then waits for the
        next pass, with no backoff."""
        taps = self._taps.get(spec.name)
        if taps is None or len(taps) != len(spec.nics):
            raise NotReady("waiting for a pass to set up its taps")
        wait = self.gate.why_wait(spec)
        if wait is not None:
            if wait.needs_pass and self.wants_pass is not None:
                self.wants_pass(spec.name)
            raise NotReady(wait.why)
        for disk in spec.disks:
            made = disk.size is not None or disk.source is not None
            if made and not self.host.host_path(disk.device).exists():
                raise NotReady(f"waiting for its disk {disk.device} to be created")
        return next_boot(
            spec,
            taps=taps,
            ctx=plan_context(self.config),
            first_disk_bootable=self.host.first_disk_bootable(spec),
        )

    def _save(self, ledger: Ledger, errors: list[str]) -> bool:
        """Persist `ledger`; it is this pass's truth either way, and a failed write is retried
        by the next pass that changes anything."""
        self.ledger = ledger
        try:
            save_ledger(self.config.state_dir, ledger)
        except OSError as exc:
            errors.append(f"cannot write the ledger in {self.config.state_dir}: {exc.strerror}")
            return False
        return True

    def _from_records(self, table: ProcessTable) -> tuple[frozenset[str], frozenset[str]]:
        """Guests whose boot record shows a live shim, loader or bhyve (checked against the
        process listing, so a stale record's reused pid is not taken for a guest), and those
        an operator's `stop` holds."""
        live = set()
        held = set()
        for name in recorded_guests(self.config.run_dir):
            ops = ShimGuestOps(
                name,
                runner=self.host.runner,
                run_dir=self.config.run_dir,
                vmm_dir=self.host.host_path(self.config.vmm_dir),
                processes=lambda: table,
            )
            rec = ops.record()
            if boot_is_live(ops.trusted(rec), ops.alive):
                live.add(name)
            elif rec.outcome == "held":
                held.add(name)
        return frozenset(live), frozenset(held)

    def _place(self, specs: Mapping[str, GuestSpec]) -> Placed:
        """`place` is pure: a pass whose files and config did not change reuses its split."""
        key = (specs, self.host_name, self.config.placement)
        last = self._last_placed
        if last is not None and all(a is b or a == b for a, b in zip(last[0], key, strict=True)):
            return last[1]
        placed = place(specs, key[1], self.config.placement)
        self._last_placed = (key, placed)
        return placed

    def _plan(
        self, desired: Mapping[str, GuestSpec], facts: HostFacts, ctx: PlanContext, taps: Taps
    ) -> Plan:
        """plan_actions is pure: the same specs, facts, ledger and context give the same plan,
        so a no-op pass at 1,000 guests does not plan them all again."""
        key = (desired, facts, self.ledger, ctx, taps)
        last = self._last_plan
        if last is not None and all(a is b or a == b for a, b in zip(last[0], key, strict=True)):
            return last[1]
        plan = plan_actions(desired, facts, self.ledger, ctx, taps=taps)
        self._last_plan = (key, plan)
        return plan


def log_outcome(outcome: Outcome) -> None:
    """The daemon's record of what an action did (the CLI prints instead)."""
    action = outcome.action
    fields: dict[str, Any] = {"action": action.summary}
    if action.guest:
        fields["guest"] = action.guest
    if outcome.status == "done":
        log.info("host.changed", **fields)
    elif outcome.status == "failed" and outcome.error is not None:
        err = outcome.error
        log.error(
            "host.action_failed",
            **fields,
            argv=list(err.argv),
            status=err.status,
            stderr=err.stderr.strip(),
        )
    elif outcome.status == "skipped":
        log.warning("host.action_skipped", **fields, waiting_for=list(outcome.waiting_for))
