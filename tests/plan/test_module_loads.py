"""Kernel modules a guest needs are loaded when the kernel lacks them, as vm-bhyve's `vm init`
does: vmm always, if_tuntap for taps, if_bridge for bridges, nmdm for null-modem consoles.
`net.link.tap.up_on_open` exists only once if_tuntap is in the kernel (reference §8.7), so
setting it waits for that load."""

from __future__ import annotations

from reconciler.actions import LoadModule, SetSysctl, StartGuest
from reconciler.facts import HostFacts, Interface
from reconciler.ledger import Ledger
from reconciler.plan import UP_ON_OPEN, PlanContext, plan_actions
from reconciler.spec import Disk, GuestSpec, Lifecycle, Nic

IGB0 = {"igb0": Interface(name="igb0", kind="other", up=True)}
GENERIC = frozenset({"vmm", "if_tuntap", "if_tun", "if_tap"})  # amd64 GENERIC + vmm.ko
NIC_GUEST = GuestSpec(
    name="web",
    console="stdio",
    disks=(Disk(path="/vm/web.img"),),
    nics=(Nic(tap="tap0", bridge="bridge0"),),
)
PLAIN_GUEST = GuestSpec(name="batch", console="stdio", disks=(Disk(path="/vm/batch.img"),))
NMDM_GUEST = GuestSpec(name="serial", console="/dev/nmdm3A", disks=(Disk(path="/vm/s.img"),))


def loads(guests: list[GuestSpec], modules: frozenset[str], uplinks: bool = False) -> list[str]:
    ctx = PlanContext(uplinks={"bridge0": ("igb0",)} if uplinks else {})
    facts = HostFacts(modules=modules, interfaces=IGB0)
    plan = plan_actions({g.name: g for g in guests}, facts, Ledger(), ctx)
    return [a.module for a in plan.actions if isinstance(a, LoadModule)]


def test_a_custom_kernel_gets_every_module_a_nic_guest_needs() -> None:
    assert loads([NIC_GUEST], frozenset({"vmm"})) == ["if_bridge", "if_tuntap"]


def test_generic_has_if_tuntap_compiled_in() -> None:
    assert loads([NIC_GUEST], GENERIC) == ["if_bridge"]
    assert loads([NIC_GUEST], GENERIC | {"if_bridge", "bridgestp"}) == []


def test_before_13_the_module_was_if_tap() -> None:
    assert loads([NIC_GUEST], frozenset({"vmm", "if_tap", "if_bridge"})) == []


def test_a_guest_without_nics_needs_no_network_module() -> None:
    assert loads([PLAIN_GUEST], frozenset({"vmm"})) == []


def test_the_configs_uplink_bridge_needs_if_bridge_without_any_guest_nic() -> None:
    assert loads([PLAIN_GUEST], GENERIC, uplinks=True) == ["if_bridge"]


def test_nmdm_only_for_a_null_modem_console() -> None:
    assert loads([NMDM_GUEST, PLAIN_GUEST], GENERIC) == ["nmdm"]
    assert loads([NMDM_GUEST], GENERIC | {"nmdm"}) == []


def test_the_tap_sysctl_waits_for_if_tuntap_and_the_nic_guest_waits_for_both() -> None:
    facts = HostFacts(modules=frozenset({"vmm"}), sysctls={}, interfaces=IGB0)
    running = GuestSpec(
        name="web",
        console="stdio",
        lifecycle=Lifecycle(state="running"),
        disks=NIC_GUEST.disks,
        nics=NIC_GUEST.nics,
    )
    actions = plan_actions({"web": running}, facts, Ledger(), PlanContext()).actions
    sysctl = next(a for a in actions if isinstance(a, SetSysctl))
    assert sysctl.name == UP_ON_OPEN
    assert sysctl.requires == (LoadModule.key_of("if_tuntap"),)
    start = next(a for a in actions if isinstance(a, StartGuest))
    assert {LoadModule.key_of("if_tuntap"), LoadModule.key_of("if_bridge"), sysctl.key} <= set(
        start.requires
    )


def test_no_tap_sysctl_without_a_nic_guest() -> None:
    facts = HostFacts(modules=frozenset({"vmm"}), sysctls={}, interfaces=IGB0)
    plan = plan_actions({"batch": PLAIN_GUEST}, facts, Ledger(), PlanContext())
    assert not [a for a in plan.actions if isinstance(a, SetSysctl)]
