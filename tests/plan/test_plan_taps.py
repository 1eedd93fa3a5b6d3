"""Taps are allocated once per pass: the plan carries them, and the pass's boots and its
search for guests run from outside use those, never an allocation of their own."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pytest

from reconciler import plan as planning
from reconciler.actions import AddMember, CreateInterface
from reconciler.facts import HostFacts, Interface
from reconciler.ledger import CreatedInterface, Ledger
from reconciler.plan import PlanContext, guests_holding_taps, next_boot, plan_actions
from reconciler.spec import Disk, GuestSpec, Nic

CTX = PlanContext(uplinks={"bridge0": ("igb0",)}, guests_dir="/state/guests")


def guest(name: str, *nics: Nic) -> GuestSpec:
    return GuestSpec(
        name=name, console="/dev/ttyu0", disks=(Disk(path=f"/vm/{name}.img"),), nics=nics
    )


DESIRED = {
    "web": guest("web", Nic(bridge="bridge0"), Nic(tap="tap1", bridge="bridge0")),
    "db": guest("db", Nic(bridge="bridge0")),
}
FACTS = HostFacts(
    modules=frozenset({"vmm"}),
    sysctls={"net.link.tap.up_on_open": "1"},
    interfaces={
        "igb0": Interface(name="igb0", kind="other", up=True),
        "tap0": Interface(name="tap0", kind="tap", up=True),  # someone else's
        "bridge0": Interface(name="bridge0", kind="bridge", up=True, members=("igb0",)),
    },
)


def nic_taps(argv: tuple[str, ...]) -> list[str]:
    return [a.rsplit(",", 1)[1] for a in argv if ",virtio-net," in a]


def test_plan_allocates_once_and_carries_the_taps_it_planned_with(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[Mapping[str, GuestSpec]] = []
    real = planning.allocate_taps

    def counting(
        desired: Mapping[str, GuestSpec], interfaces: Iterable[str] | None, ledger: Ledger
    ) -> dict[str, tuple[str, ...]]:
        calls.append(desired)
        return real(desired, interfaces, ledger)

    monkeypatch.setattr(planning, "allocate_taps", counting)
    plan = plan_actions(DESIRED, FACTS, Ledger(), CTX)
    assert len(calls) == 1
    # Lowest free: tap0 is taken by someone, tap1 by web's explicit NIC.
    assert plan.taps == {"db": ("tap2",), "web": ("tap3", "tap1")}
    created = [a.name for a in plan.actions if isinstance(a, CreateInterface)]
    assert created == ["tap2", "tap3", "tap1"]  # by boot order, then name: db before web
    added = {a.member for a in plan.actions if isinstance(a, AddMember) and a.guest}
    assert added == {"tap1", "tap2", "tap3"}


def test_taps_given_to_the_plan_are_used_as_they_are(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the pass's taps were given: nothing may allocate again")

    monkeypatch.setattr(planning, "allocate_taps", refuse)
    taps = {"db": ("tap7",), "web": ("tap8", "tap1")}
    plan = plan_actions(DESIRED, FACTS, Ledger(), CTX, taps=taps)
    assert plan.taps is taps
    assert sorted(a.name for a in plan.actions if isinstance(a, CreateInterface)) == [
        "tap1",
        "tap7",
        "tap8",
    ]


def test_next_boot_runs_the_taps_the_plan_created() -> None:
    plan = plan_actions(DESIRED, FACTS, Ledger(), CTX)
    for name, spec in DESIRED.items():
        boot = next_boot(spec, taps=plan.taps[name], ctx=CTX, first_disk_bootable=True)
        assert nic_taps(boot.bhyve) == list(plan.taps[name])
    created = {a.name for a in plan.actions if isinstance(a, CreateInterface)}
    assert {t for ts in plan.taps.values() for t in ts} == created


def test_next_boot_refuses_taps_that_do_not_match_the_nics() -> None:
    with pytest.raises(ValueError, match="2 NICs but 1 taps"):
        next_boot(DESIRED["web"], taps=("tap3",), ctx=CTX, first_disk_bootable=True)


def test_a_guest_keeps_its_ledger_tap_in_the_plan_and_at_boot() -> None:
    ledger = Ledger(interfaces={"tap5": CreatedInterface("tap", "db")})
    facts = HostFacts(
        modules=FACTS.modules,
        sysctls=FACTS.sysctls,
        interfaces={
            **(FACTS.interfaces or {}),
            "tap5": Interface(name="tap5", kind="tap", up=True),
        },
    )
    plan = plan_actions(DESIRED, facts, ledger, CTX)
    assert plan.taps["db"] == ("tap5",)
    boot = next_boot(DESIRED["db"], taps=plan.taps["db"], ctx=CTX, first_disk_bootable=True)
    assert nic_taps(boot.bhyve) == ["tap5"]


def test_guests_holding_taps_looks_at_the_pass_taps() -> None:
    held = HostFacts(
        interfaces={"tap9": Interface(name="tap9", kind="tap", up=True, opened_by=77)},
        vms=frozenset({"db", "web"}),
    )
    assert guests_holding_taps(held, Ledger(), {"db": ("tap9",), "web": ("tap3",)}) == {"db": 77}
    assert guests_holding_taps(held, Ledger(), {"db": ("tap3",)}) == {}
    # Only among the VMs asked about.
    assert guests_holding_taps(held, Ledger(), {"db": ("tap9",)}, vms=["web"]) == {}
