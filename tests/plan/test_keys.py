"""Typed dependency keys: each action provides a key of its own class, `requires` names only
keys that earlier actions of the same plan provide, a failed key skips what requires it, and
`plan --json` still reads `interface:tap0`."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
    Key,
    LoadModule,
    RemoveMember,
    SetSysctl,
    StartGuest,
    StopGuest,
)
from reconciler.errors import HostCommandError
from reconciler.execute import execute_actions
from reconciler.facts import DiskFile, HostFacts, Interface, Observation
from reconciler.ledger import CreatedInterface, Ledger
from reconciler.plan import PlanContext, plan_actions
from reconciler.spec import Disk, GuestSpec, Lifecycle, Nic, Uefi

EVERY_ACTION: list[tuple[Action, str]] = [
    (LoadModule(module="vmm"), "module:vmm"),
    (SetSysctl(name="net.link.tap.up_on_open", value="1"), "sysctl:net.link.tap.up_on_open"),
    (CreateInterface(name="tap0", kind="tap"), "interface:tap0"),
    (DestroyInterface(name="tap0", kind="tap"), "destroy-interface:tap0"),
    (AddMember(bridge="bridge0", member="tap0"), "member:bridge0:tap0"),
    (RemoveMember(bridge="bridge0", member="tap0"), "remove-member:bridge0:tap0"),
    (InterfaceUp(name="bridge0"), "up:bridge0"),
    (CreateDiskFile(path="/vm/a.img", size=1, size_text="1"), "disk:/vm/a.img"),
    (CreateZvol(zvol="zroot/a", size_text="1G"), "disk:/dev/zvol/zroot/a"),
    (CopyFile(source="/t", path="/s/a"), "file:/s/a"),
    (Forget(kind="member", what="bridge0 tap0"), "forget:member:bridge0 tap0"),
    (DestroyVM(name="a"), "destroy-vm:a"),
    (StartGuest(name="a"), "start:a"),
    (StopGuest(name="a", reason="gone"), "stop:a"),
]


@pytest.mark.parametrize(("action", "text"), EVERY_ACTION)
def test_every_action_provides_a_key_of_its_own_class_that_reads_as_before(
    action: Action, text: str
) -> None:
    assert isinstance(action.key, Key)
    assert action.key.action is type(action)
    assert str(action.key) == text
    assert action.as_dict()["key"] == text


def test_keys_of_different_actions_on_one_name_differ() -> None:
    assert CreateInterface.key_of("tap0") != DestroyInterface.key_of("tap0")
    assert CreateInterface.key_of("tap0") == CreateInterface(name="tap0", kind="tap").key
    assert AddMember.key_of("bridge0", "tap0") != AddMember.key_of("bridge0", "tap1")


def test_plan_json_lists_requires_as_readable_strings() -> None:
    add = AddMember(
        bridge="bridge0",
        member="tap0",
        requires=(CreateInterface.key_of("bridge0"), CreateInterface.key_of("tap0")),
    )
    assert add.as_dict()["requires"] == ["interface:bridge0", "interface:tap0"]


def _failing(*failing: Action) -> Callable[[Action], bool]:
    def apply(action: Action) -> bool:
        if action in failing:
            raise HostCommandError(action.argv or (), 1, "simulated")
        return True

    return apply


def test_an_action_requiring_a_failed_key_is_skipped_and_the_skip_propagates() -> None:
    bridge = CreateInterface(name="bridge0", kind="bridge")
    tap = CreateInterface(name="tap0", kind="tap")
    add = AddMember(bridge="bridge0", member="tap0", requires=(bridge.key, tap.key))
    up = InterfaceUp(name="bridge0", requires=(bridge.key,))
    start = StartGuest(name="a", requires=(add.key,))
    other = CreateInterface(name="tap1", kind="tap")
    report = execute_actions([bridge, tap, add, up, start, other], _failing(bridge), Ledger())
    status = {str(o.action.key): (o.status, o.waiting_for) for o in report.outcomes}
    assert status == {
        "interface:bridge0": ("failed", ()),
        "interface:tap0": ("done", ()),
        "member:bridge0:tap0": ("skipped", ("interface:bridge0",)),
        "up:bridge0": ("skipped", ("interface:bridge0",)),
        "start:a": ("skipped", ("member:bridge0:tap0",)),
        "interface:tap1": ("done", ()),
    }


def test_a_key_is_matched_by_its_action_class_not_its_name() -> None:
    # A DestroyInterface of tap0 failing does not hold back what waits for tap0's creation.
    destroy = DestroyInterface(name="tap0", kind="tap")
    create = CreateInterface(name="tap0", kind="tap")
    add = AddMember(bridge="bridge0", member="tap0", requires=(create.key,))
    report = execute_actions([destroy, create, add], _failing(destroy), Ledger())
    assert [o.status for o in report.outcomes] == ["failed", "done", "done"]


def test_what_requires_a_supervised_stop_waits_for_it() -> None:
    stop = StopGuest(name="old", reason="its file is gone")
    forget = Forget(kind="disk", what="/vm/old.img", guest="old", requires=(stop.key,))
    report = execute_actions([stop, forget], _failing(), Ledger())
    assert [(o.status, o.waiting_for) for o in report.outcomes] == [
        ("pending", ()),
        ("pending", ("stop:old",)),
    ]


# -- every key a plan requires is provided by an earlier action of that plan ----------------

NAMES = ("a", "b", "c")


@st.composite
def guests(draw: st.DrawFn) -> dict[str, GuestSpec]:
    desired: dict[str, GuestSpec] = {}
    for i, name in enumerate(draw(st.lists(st.sampled_from(NAMES), unique=True))):
        nics = tuple(
            Nic(tap=f"tap{10 * (i + 1) + n}" if explicit else None, bridge=bridge)
            for n, (explicit, bridge) in enumerate(
                draw(
                    st.lists(
                        st.tuples(st.booleans(), st.sampled_from([None, "bridge0", "bridge1"])),
                        max_size=2,
                    )
                )
            )
        )
        size = draw(st.sampled_from([None, 1 << 30]))
        disk = draw(
            st.sampled_from(
                [Disk(path=f"/vm/{name}.img", size=size), Disk(zvol=f"zroot/{name}", size=size)]
            )
        )
        desired[name] = GuestSpec(
            name=name,
            lifecycle=Lifecycle(
                state=draw(st.sampled_from(["running", "stopped"])),
                order=draw(st.integers(0, 2)),
            ),
            console=draw(st.sampled_from(["nmdm", "/dev/ttyu0"])),
            loader=draw(st.sampled_from(["bhyveload", "uefi"])),
            uefi=Uefi(vars=draw(st.booleans())),
            disks=(disk,),
            nics=nics,
        )
    return desired


IFACES = ("tap0", "tap1", "tap10", "tap20", "bridge0", "bridge1", "igb0")
OWNERS = (*NAMES, "gone")


@st.composite
def host_facts(draw: st.DrawFn) -> HostFacts:
    names = draw(st.lists(st.sampled_from(IFACES), unique=True))
    interfaces = {
        n: Interface(
            name=n,
            kind="bridge" if n.startswith("bridge") else "tap" if n.startswith("tap") else "other",
            up=draw(st.booleans()),
            members=tuple(draw(st.lists(st.sampled_from(IFACES), unique=True, max_size=3)))
            if n.startswith("bridge")
            else (),
        )
        for n in names
    }
    facts = HostFacts(
        modules=draw(st.sets(st.sampled_from(["vmm", "nmdm"])).map(frozenset)),
        sysctls={"net.link.tap.up_on_open": draw(st.sampled_from(["0", "1"]))},
        interfaces=interfaces,
        vms=draw(st.sets(st.sampled_from(OWNERS)).map(frozenset)),
        zvols={z: 1 for z in draw(st.sets(st.sampled_from([f"zroot/{n}" for n in NAMES])))},
        disks={
            f"/vm/{n}.img": DiskFile(exists=True) for n in draw(st.sets(st.sampled_from(NAMES)))
        },
    )
    observations: list[Observation] = ["modules", "interfaces", "zvols", "vms"]
    unobserved = draw(st.sets(st.sampled_from(observations)))
    return HostFacts(
        modules=None if "modules" in unobserved else facts.modules,
        sysctls=facts.sysctls,
        interfaces=None if "interfaces" in unobserved else facts.interfaces,
        vms=None if "vms" in unobserved else facts.vms,
        zvols=None if "zvols" in unobserved else facts.zvols,
        disks=facts.disks,
        unobserved={fact: "simulated" for fact in unobserved},
    )


@st.composite
def ledgers(draw: st.DrawFn) -> Ledger:
    taps = draw(st.dictionaries(st.sampled_from(IFACES[:4]), st.sampled_from(OWNERS)))
    bridges = draw(
        st.dictionaries(st.sampled_from(["bridge0", "bridge1"]), st.sampled_from(OWNERS))
    )
    return Ledger(
        interfaces={
            **{t: CreatedInterface("tap", g) for t, g in taps.items()},
            **{b: CreatedInterface("bridge", g) for b, g in bridges.items()},
        },
        members=draw(
            st.dictionaries(
                st.tuples(st.sampled_from(["bridge0", "bridge1"]), st.sampled_from(IFACES[:4])),
                st.sampled_from(OWNERS),
            )
        ),
        disks=draw(st.dictionaries(st.sampled_from(["/vm/a.img", "/vm/gone.img"]), st.just("a"))),
        orders=draw(st.dictionaries(st.sampled_from(OWNERS), st.integers(0, 2))),
    )


INTERFACE_ACTIONS = (CreateInterface, AddMember, RemoveMember, InterfaceUp, DestroyInterface)


@settings(max_examples=150, deadline=None)
@given(
    desired=guests(),
    facts=host_facts(),
    ledger=ledgers(),
    running=st.sets(st.sampled_from(OWNERS)).map(frozenset),
)
def test_requires_name_only_keys_of_earlier_actions_and_nothing_needs_an_unobserved_fact(
    desired: dict[str, GuestSpec], facts: HostFacts, ledger: Ledger, running: frozenset[str]
) -> None:
    ctx = PlanContext(uplinks={"bridge0": ("igb0",)}, running=running)
    plan = plan_actions(desired, facts, ledger, ctx)
    provided: set[Key] = set()
    for action in plan.actions:
        assert all(isinstance(k, Key) for k in action.requires)
        assert set(action.requires) <= provided, f"{action.describe()} waits for a key no one gives"
        provided.add(action.key)
    kinds = {type(a) for a in plan.actions}
    if facts.interfaces is None:
        assert not kinds & set(INTERFACE_ACTIONS)
        assert not any(
            isinstance(a, Forget) and a.kind in ("interface", "member") for a in plan.actions
        )
    if facts.modules is None:
        assert LoadModule not in kinds
    if facts.vms is None:
        assert DestroyVM not in kinds
    if facts.zvols is None:
        assert CreateZvol not in kinds
    starts = {a.name for a in plan.actions if isinstance(a, StartGuest)}
    assert not starts & plan.blocked.keys()
    would_start = {
        n for n, g in desired.items() if g.lifecycle.state == "running" and n not in running
    }
    assert starts | plan.blocked.keys() == would_start
