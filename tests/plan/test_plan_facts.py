"""Partial facts: one failed observation blocks only what needs it (DESIGN.md rule 8).

One host, planned with every fact observed and then with each observation failed in turn: the
table says which actions drop out and which guests' starts wait. Everything else, the stops
and the undoing of a removed guest's disk among them, is planned as before.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from reconciler.facts import DiskFile, HostFacts, Interface, Observation
from reconciler.ledger import CreatedInterface, Ledger
from reconciler.plan import PlanContext, plan_actions
from reconciler.spec import DesiredState, Disk, GuestSpec, Lifecycle, Nic

GIB = 1 << 30


def guest(name: str, disk: Disk, *nics: Nic, state: DesiredState = "running") -> GuestSpec:
    return GuestSpec(
        name=name,
        console="/dev/ttyu0",
        lifecycle=Lifecycle(state=state),
        disks=(disk,),
        nics=nics,
    )


DESIRED = {
    "filey": guest("filey", Disk(path="/vm/filey.img", size=GIB)),  # no NIC; disk missing
    "netty": guest("netty", Disk(path="/vm/netty.img", size=GIB), Nic(bridge="bridge0")),
    "zvoly": guest("zvoly", Disk(zvol="zroot/zvoly", size=GIB)),  # zvol missing
    "stopme": guest("stopme", Disk(path="/vm/stopme.img"), state="stopped"),
}
# "gone" runs, but its file was removed: the ledger holds its tap, membership and disk.
LEDGER = Ledger(
    interfaces={"tap7": CreatedInterface("tap", "gone")},
    members={("bridge0", "tap7"): "gone"},
    disks={"/vm/gone.img": "gone"},
    orders={"gone": 5},
)
CTX = PlanContext(uplinks={"bridge0": ("igb0",)}, running=frozenset({"gone", "stopme"}))
OBSERVED = HostFacts(
    modules=frozenset({"if_tuntap", "if_bridge"}),  # GENERIC, and bridge0 exists: no vmm yet
    sysctls={"net.link.tap.up_on_open": "1"},
    interfaces={
        "igb0": Interface(name="igb0", kind="other", up=True),
        "tap7": Interface(name="tap7", kind="tap", up=True),
        "bridge0": Interface(name="bridge0", kind="bridge", up=True, members=("igb0", "tap7")),
    },
    vms=frozenset({"filey", "netty", "gone", "stopme"}),
    zvols={},
    disks={"/vm/netty.img": DiskFile(exists=True, size=GIB)},
)
EVERYTHING = [
    "+ load kernel module vmm",
    "+ create tap0 for guest netty",
    "~ add tap0 to bridge0 for guest netty",
    "+ create disk image /vm/filey.img (1G, sparse) for guest filey",
    "+ create ZFS volume zroot/zvoly (1G) for guest zvoly",
    "- stop guest gone (its file is gone)",
    '- stop guest stopme (its file says state = "stopped")',
    "- destroy stale VM filey (no bhyve runs it)",
    "- destroy stale VM netty (no bhyve runs it)",
    "+ start guest filey",
    "+ start guest netty",
    "+ start guest zvoly",
    "- remove tap7 from bridge0 (added for guest gone)",
    "- destroy tap7 (created for guest gone)",
    "- forget /vm/gone.img (created for guest gone; kept, never deleted)",
]
STARTS = ["+ start guest filey", "+ start guest netty", "+ start guest zvoly"]


def failed(fact: Observation, error: str) -> HostFacts:
    """OBSERVED with one observation failed, as FreeBSDHost.observe reports it."""
    without: dict[Observation, HostFacts] = {
        "modules": replace(OBSERVED, modules=None),
        "interfaces": replace(OBSERVED, interfaces=None),
        "zvols": replace(OBSERVED, zvols=None),
        "vms": replace(OBSERVED, vms=None),
        # filey's stat failed: its path is absent, as it already is
        "disks": OBSERVED,
    }
    return replace(without[fact], unobserved={fact: error})


def test_with_every_fact_observed_everything_is_planned() -> None:
    plan = plan_actions(DESIRED, OBSERVED, LEDGER, CTX)
    assert [a.describe() for a in plan.actions] == EVERYTHING
    assert plan.blocked == {}


@pytest.mark.parametrize(
    ("fact", "dropped", "blocked"),
    [
        ("modules", ["+ load kernel module vmm", *STARTS], {"filey", "netty", "zvoly"}),
        (
            "interfaces",
            [
                "+ create tap0 for guest netty",
                "~ add tap0 to bridge0 for guest netty",
                "- destroy stale VM netty (no bhyve runs it)",  # a bhyve outside may hold tap0
                "+ start guest netty",
                "- remove tap7 from bridge0 (added for guest gone)",
                "- destroy tap7 (created for guest gone)",
            ],
            {"netty"},
        ),
        (
            "zvols",
            ["+ create ZFS volume zroot/zvoly (1G) for guest zvoly", "+ start guest zvoly"],
            {"zvoly"},
        ),
        (
            "vms",
            [
                "- destroy stale VM filey (no bhyve runs it)",
                "- destroy stale VM netty (no bhyve runs it)",
                *STARTS,
            ],
            {"filey", "netty", "zvoly"},
        ),
        (
            "disks",
            [
                "+ create disk image /vm/filey.img (1G, sparse) for guest filey",
                "+ start guest filey",
            ],
            {"filey"},
        ),
    ],
)
def test_a_failed_observation_drops_only_what_needs_it(
    fact: Observation, dropped: list[str], blocked: set[str]
) -> None:
    error = f"{fact}: simulated EIO"
    plan = plan_actions(DESIRED, failed(fact, error), LEDGER, CTX)
    assert [a.describe() for a in plan.actions] == [a for a in EVERYTHING if a not in dropped]
    assert set(plan.blocked) == blocked
    assert all(error in why for why in plan.blocked.values())


def test_zfs_failing_leaves_file_guests_starting_and_removed_guests_stopping() -> None:
    """What a hostile tester found: with `zfs list` failing, nothing at all happened."""
    error = "zfs list -H -p -t volume -o name,volsize: exit status 1: pool I/O is suspended"
    plan = plan_actions(DESIRED, failed("zvols", error), LEDGER, CTX)
    summaries = [a.describe() for a in plan.actions]
    assert "+ start guest filey" in summaries
    assert "- stop guest gone (its file is gone)" in summaries
    assert "- forget /vm/gone.img (created for guest gone; kept, never deleted)" in summaries
    assert plan.blocked == {"zvoly": f"ZFS volumes not observed: {error}"}


def test_a_guest_waiting_on_two_facts_names_both() -> None:
    facts = replace(
        OBSERVED,
        modules=None,
        zvols=None,
        unobserved={"modules": "kldstat: EIO", "zvols": "zfs: EIO"},
    )
    plan = plan_actions(DESIRED, facts, LEDGER, CTX)
    assert plan.blocked["zvoly"] == (
        "kernel modules not observed: kldstat: EIO; ZFS volumes not observed: zfs: EIO"
    )
    assert plan.blocked["filey"] == "kernel modules not observed: kldstat: EIO"


def test_a_running_or_stopped_guest_never_waits() -> None:
    facts = replace(OBSERVED, modules=None, vms=None, unobserved={"modules": "x", "vms": "y"})
    ctx = replace(CTX, running=CTX.running | {"filey", "netty", "zvoly"})
    assert plan_actions(DESIRED, facts, LEDGER, ctx).blocked == {}
