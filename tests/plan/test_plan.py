"""Planning as data: desired specs + observed facts + ledger in, actions out (pyinfra-style)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import pytest

from reconciler import plan as planning
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
from reconciler.facts import DiskFile, HostFacts, Interface, InterfaceKind
from reconciler.ledger import CreatedInterface, Ledger
from reconciler.plan import PlanContext, allocate_taps, guests_holding_taps
from reconciler.spec import DesiredState, Disk, GuestSpec, Lifecycle, Nic, Uefi

GIB = 1 << 30
HANDBOOK = GuestSpec(
    name="guestname",
    console="/dev/nmdm0A",
    lifecycle=Lifecycle(state="stopped"),
    disks=(Disk(path="/vm/guest.img", size=16 * GIB),),
    nics=(Nic(tap="tap0", bridge="bridge0"),),
)
UPLINK = PlanContext(uplinks={"bridge0": ("igb0",)}, guests_dir="/state/guests")


def iface(
    name: str, kind: InterfaceKind = "other", up: bool = True, members: tuple[str, ...] = ()
) -> Interface:
    return Interface(name=name, kind=kind, up=up, members=members)


def converged_interfaces() -> dict[str, Interface]:
    return {
        "igb0": iface("igb0"),
        "tap0": iface("tap0", "tap"),
        "bridge0": iface("bridge0", "bridge", members=("tap0", "igb0")),
    }


def converged_facts() -> HostFacts:
    """The Handbook host once converged; a case changes it with `replace`."""
    return HostFacts(
        modules=frozenset({"vmm", "nmdm", "if_tuntap", "if_bridge"}),
        sysctls={"net.link.tap.up_on_open": "1"},
        interfaces=converged_interfaces(),
        disks={"/vm/guest.img": DiskFile(exists=True, size=16 * GIB)},
    )


def summaries(actions: Sequence[Action]) -> list[str]:
    return [a.describe() for a in actions]


def plan_actions(
    desired: dict[str, GuestSpec], facts: HostFacts, ledger: Ledger, ctx: PlanContext
) -> list[Action]:
    """The plan's actions, what these cases are about (its taps and blocked guests: see
    test_plan_taps.py and test_plan_facts.py)."""
    return list(planning.plan_actions(desired, facts, ledger, ctx).actions)


def holding(desired: dict[str, GuestSpec], facts: HostFacts, ledger: Ledger) -> dict[str, int]:
    """guests_holding_taps with the taps a pass plans with."""
    taps = planning.plan_actions(desired, facts, ledger).taps
    return guests_holding_taps(facts, ledger, taps)


def test_empty_host_gets_the_handbook_preparation_in_order() -> None:
    facts = HostFacts(interfaces={"igb0": iface("igb0")}, sysctls={"net.link.tap.up_on_open": "0"})
    actions = plan_actions({"guestname": HANDBOOK}, facts, Ledger(), UPLINK)
    assert [type(a) for a in actions] == [
        LoadModule,  # vmm
        LoadModule,  # nmdm (the console is a null modem)
        LoadModule,  # if_bridge
        LoadModule,  # if_tuntap (the facts show a kernel without it)
        SetSysctl,
        CreateInterface,  # bridge0
        CreateInterface,  # tap0
        AddMember,  # igb0 (uplink)
        AddMember,  # tap0
        InterfaceUp,
        CreateDiskFile,
    ]
    assert [a.argv for a in actions[:4]] == [
        ("kldload", "vmm"),
        ("kldload", "nmdm"),
        ("kldload", "if_bridge"),
        ("kldload", "if_tuntap"),
    ]
    assert actions[4].requires == (LoadModule.key_of("if_tuntap"),)
    assert summaries(actions)[5:7] == [
        "+ create bridge0",
        "+ create tap0 for guest guestname",
    ]
    assert actions[7].argv == ("ifconfig", "bridge0", "addm", "igb0")
    assert actions[8].argv == ("ifconfig", "bridge0", "addm", "tap0")
    assert actions[8].requires == (
        CreateInterface.key_of("bridge0"),
        CreateInterface.key_of("tap0"),
    )
    disk = actions[10]
    assert isinstance(disk, CreateDiskFile) and disk.size == 16 * GIB and disk.size_text == "16G"


def test_converged_host_plans_nothing() -> None:
    assert plan_actions({"guestname": HANDBOOK}, converged_facts(), Ledger(), UPLINK) == []


@pytest.mark.parametrize(
    ("drift", "expected"),
    [
        (
            replace(converged_facts(), sysctls={"net.link.tap.up_on_open": "0"}),
            ["~ set net.link.tap.up_on_open=1 (now 0)"],
        ),
        (
            replace(
                converged_facts(),
                interfaces={
                    "igb0": iface("igb0"),
                    "tap0": iface("tap0", "tap"),
                    "bridge0": iface("bridge0", "bridge", members=("igb0",)),
                },
            ),
            ["~ add tap0 to bridge0 for guest guestname"],
        ),
        (
            replace(
                converged_facts(),
                interfaces={
                    "igb0": iface("igb0"),
                    "tap0": iface("tap0", "tap"),
                    "bridge0": iface("bridge0", "bridge", up=False, members=("tap0", "igb0")),
                },
            ),
            ["~ bring bridge0 up"],
        ),
        (
            replace(
                converged_facts(),
                interfaces={
                    "igb0": iface("igb0"),
                    "bridge0": iface("bridge0", "bridge", members=("igb0",)),
                },
            ),
            ["+ create tap0 for guest guestname", "~ add tap0 to bridge0 for guest guestname"],
        ),
        (
            replace(converged_facts(), modules=frozenset({"nmdm", "if_tuntap", "if_bridge"})),
            ["+ load kernel module vmm"],
        ),
    ],
)
def test_drift_is_repaired_and_only_drift(drift: HostFacts, expected: list[str]) -> None:
    actions = plan_actions({"guestname": HANDBOOK}, drift, Ledger(), UPLINK)
    assert summaries(actions) == expected


def test_removed_guest_undoes_only_its_ledger_entries() -> None:
    # The user made tap0 (not in the ledger); the reconciler added tap0 to bridge0, and made
    # the disk; igb0 belongs to the config. Removing the file removes the membership only.
    ledger = Ledger(
        members={("bridge0", "tap0"): "guestname"},
        disks={"/vm/guest.img": "guestname"},
        orders={"guestname": 0},
    )
    actions = plan_actions({}, converged_facts(), ledger, UPLINK)
    assert summaries(actions) == [
        "- remove tap0 from bridge0 (added for guest guestname)",
        "- forget /vm/guest.img (created for guest guestname; kept, never deleted)",
    ]


def test_removed_running_guest_stops_before_its_tap_is_destroyed() -> None:
    ledger = Ledger(
        interfaces={"tap0": CreatedInterface("tap", "guestname")},
        members={("bridge0", "tap0"): "guestname"},
        orders={"guestname": 0},
    )
    facts = replace(converged_facts(), vms=frozenset({"guestname"}))
    ctx = replace(UPLINK, running=frozenset({"guestname"}))
    actions = plan_actions({}, facts, ledger, ctx)
    assert summaries(actions) == [
        "- stop guest guestname (its file is gone)",
        "- remove tap0 from bridge0 (added for guest guestname)",
        "- destroy tap0 (created for guest guestname)",
    ]
    assert actions[1].requires == (StopGuest.key_of("guestname"),)
    assert set(actions[2].requires) == {
        StopGuest.key_of("guestname"),
        RemoveMember.key_of("bridge0", "tap0"),
    }


def test_foreign_vms_and_interfaces_are_never_touched() -> None:
    facts = replace(
        converged_facts(),
        vms=frozenset({"someone-elses-vm"}),
        interfaces={
            **converged_interfaces(),
            "tap7": iface("tap7", "tap"),
            "bridge9": iface("bridge9", "bridge", members=("tap7",)),
        },
    )
    assert plan_actions({"guestname": HANDBOOK}, facts, Ledger(), UPLINK) == []


def test_stale_vm_of_a_guest_that_should_run_is_destroyed_before_it_starts() -> None:
    running = replace(HANDBOOK, lifecycle=Lifecycle(state="running"))
    facts = replace(converged_facts(), vms=frozenset({"guestname"}))
    actions = plan_actions({"guestname": running}, facts, Ledger(), UPLINK)
    assert [type(a) for a in actions] == [DestroyVM, StartGuest]
    assert actions[0].argv == ("bhyvectl", "--vm=guestname", "--destroy")
    assert DestroyVM.key_of("guestname") in actions[1].requires


def test_guests_start_by_order_and_stop_in_reverse() -> None:
    def guest(name: str, order: int, state: DesiredState = "running") -> GuestSpec:
        return GuestSpec(
            name=name,
            lifecycle=Lifecycle(order=order, state=state),
            console="/dev/ttyu0",
            disks=(Disk(path=f"/vm/{name}.img"),),
        )

    desired = {
        "a": guest("a", 5),
        "b": guest("b", -1),
        "c": guest("c", 5, "stopped"),
        "d": guest("d", 9, "stopped"),
    }
    facts = replace(converged_facts(), disks={}, modules=frozenset({"vmm"}))
    ctx = replace(UPLINK, running=frozenset({"c", "d"}))
    actions = [a for a in plan_actions(desired, facts, Ledger(), ctx) if a.supervised]
    assert summaries(actions) == [
        '- stop guest d (its file says state = "stopped")',
        '- stop guest c (its file says state = "stopped")',
        "+ start guest b",
        "+ start guest a",
    ]
    assert all(isinstance(a, StopGuest | StartGuest) for a in actions)


def test_moved_nic_leaves_the_old_bridge_first() -> None:
    moved = replace(HANDBOOK, nics=(Nic(tap="tap0", bridge="bridge1"),))
    ledger = Ledger(members={("bridge0", "tap0"): "guestname"})
    facts = replace(
        converged_facts(),
        interfaces={
            **converged_interfaces(),
            "bridge1": iface("bridge1", "bridge", members=()),
        },
    )
    actions = plan_actions({"guestname": moved}, facts, ledger, UPLINK)
    assert summaries(actions) == [
        "- remove tap0 from bridge0 (added for guest guestname)",
        "~ add tap0 to bridge1 for guest guestname",
    ]


def test_allocated_taps_are_lowest_free_and_stable() -> None:
    a = GuestSpec(name="a", disks=(Disk(path="/a"),), nics=(Nic(), Nic(tap="tap1")))
    b = GuestSpec(name="b", disks=(Disk(path="/b"),), nics=(Nic(),))
    taps = allocate_taps({"a": a, "b": b}, ["tap0", "igb0"], Ledger())
    assert taps == {"a": ("tap2", "tap1"), "b": ("tap3",)}
    # Once created, a guest keeps its tap even when a lower number frees up.
    ledger = Ledger(interfaces={"tap3": CreatedInterface("tap", "b")})
    assert allocate_taps({"b": b}, ["tap3"], ledger) == {"b": ("tap3",)}


def test_zvols_are_created_only_when_observed_missing() -> None:
    guest = replace(HANDBOOK, disks=(Disk(zvol="zroot/vm/d0", size=16 * GIB),))
    missing = replace(converged_facts(), zvols={})
    actions = plan_actions({"guestname": guest}, missing, Ledger(), UPLINK)
    # Without -p, so an existing volume is refused, not taken for ours (reference §8.4).
    assert [a.argv for a in actions] == [
        ("zfs", "create", "-V", "16G", "-o", "volmode=dev", "zroot/vm/d0")
    ]
    assert isinstance(actions[0], CreateZvol)
    assert actions[0].parents_argv == ("zfs", "create", "-p", "zroot/vm")
    present = replace(converged_facts(), zvols={"zroot/vm/d0": 16 * GIB})
    assert plan_actions({"guestname": guest}, present, Ledger(), UPLINK) == []
    assert isinstance(actions[0], CreateZvol)


def test_uefi_vars_copy_is_made_once() -> None:
    guest = replace(HANDBOOK, loader="uefi", uefi=Uefi(vars=True))
    actions = plan_actions({"guestname": guest}, converged_facts(), Ledger(), UPLINK)
    assert len(actions) == 1 and isinstance(actions[0], CopyFile)
    assert actions[0].source == "/usr/local/share/uefi-firmware/BHYVE_UEFI_VARS.fd"
    assert actions[0].path == "/state/guests/guestname/BHYVE_UEFI_VARS.fd"
    done = replace(converged_facts(), files={"/state/guests/guestname/BHYVE_UEFI_VARS.fd": True})
    assert plan_actions({"guestname": guest}, done, Ledger(), UPLINK) == []


def test_ledger_bridge_is_destroyed_only_when_nothing_foreign_is_in_it() -> None:
    ledger = Ledger(interfaces={"bridge5": CreatedInterface("bridge", "old")})
    lonely = replace(
        converged_facts(),
        interfaces={**converged_interfaces(), "bridge5": iface("bridge5", "bridge")},
    )
    assert summaries(plan_actions({"guestname": HANDBOOK}, lonely, ledger, UPLINK)) == [
        "- destroy bridge5 (created for guest old)"
    ]
    shared = replace(
        converged_facts(),
        interfaces={
            **converged_interfaces(),
            "bridge5": iface("bridge5", "bridge", members=("em1",)),
        },
    )
    assert plan_actions({"guestname": HANDBOOK}, shared, ledger, UPLINK) == []


def test_ledger_entries_for_vanished_things_are_forgotten() -> None:
    ledger = Ledger(interfaces={"tap9": CreatedInterface("tap", "old")})
    actions = plan_actions({"guestname": HANDBOOK}, converged_facts(), ledger, UPLINK)
    assert len(actions) == 1 and isinstance(actions[0], Forget)
    assert actions[0].describe() == "- forget interface tap9 (created for guest old; already gone)"


def test_destroy_interface_argv() -> None:
    action = DestroyInterface(name="tap3", kind="tap", guest="old")
    assert action.describe() == "- destroy tap3 (created for guest old)"
    assert action.argv == ("ifconfig", "tap3", "destroy")
    assert RemoveMember(bridge="b", member="m").argv == ("ifconfig", "b", "deletem", "m")


def test_guests_whose_tap_is_held_open_are_found_running() -> None:
    running = replace(HANDBOOK, lifecycle=Lifecycle(state="running"))
    held = replace(
        converged_facts(),
        vms=frozenset({"guestname", "other"}),
        interfaces={
            **converged_interfaces(),
            "tap0": Interface(name="tap0", kind="tap", up=True, opened_by=4242),
        },
    )
    assert holding({"guestname": running}, held, Ledger()) == {"guestname": 4242}
    # The same VM with its tap closed is a leftover: nothing runs it.
    assert (
        holding(
            {"guestname": running},
            replace(converged_facts(), vms=frozenset({"guestname"})),
            Ledger(),
        )
        == {}
    )
    # A gone guest's tap is found through the ledger.
    ledger = Ledger(interfaces={"tap0": CreatedInterface("tap", "guestname")})
    assert holding({}, held, ledger) == {"guestname": 4242}


def test_no_disk_is_created_under_a_running_guest() -> None:
    running = replace(HANDBOOK, lifecycle=Lifecycle(state="running"))
    gone = replace(converged_facts(), disks={}, vms=frozenset({"guestname"}))
    ctx = replace(UPLINK, running=frozenset({"guestname"}))
    assert plan_actions({"guestname": running}, gone, Ledger(), ctx) == []
    stopped = plan_actions({"guestname": running}, gone, Ledger(), UPLINK)
    assert [type(a) for a in stopped] == [CreateDiskFile, DestroyVM, StartGuest]
