"""Removing a guest's file undoes its ledger entries and nothing else (DESIGN.md rule 1)."""

from __future__ import annotations

from e2e_helpers import HANDBOOK_SPEC, OBSERVE, CliRig, stopped_guest

from reconciler.ledger import CreatedInterface, Ledger

USER_GUEST = stopped_guest(
    "userguest", "/vm/userguest/disk.img", size="1G", nic='tap = "tap5"\nbridge = "bridge0"'
)


def test_removed_guest_loses_only_what_the_reconciler_made_for_it(rig: CliRig) -> None:
    made = rig.sim.run(["ifconfig", "tap5", "create"])  # the user's own tap
    assert made.returncode == 0, made.stderr
    rig.write_spec("guestname", HANDBOOK_SPEC)
    spec = rig.write_spec("userguest", USER_GUEST)
    assert rig.cli("apply").returncode == 0
    assert set(rig.sim.interfaces()["bridge0"].members) == {"igb0", "tap0", "tap5"}
    ledger = rig.ledger()
    assert ledger.members[("bridge0", "tap5")] == "userguest"
    assert "tap5" not in ledger.interfaces  # the user made it
    assert ledger.disks["/vm/userguest/disk.img"] == "userguest"
    image = rig.sim.path("/vm/userguest/disk.img")
    assert image.stat().st_size == 1 << 30

    spec.unlink()
    proc, ran = rig.logged("apply")

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert ran == [*OBSERVE, ["ifconfig", "bridge0", "deletem", "tap5"]]
    interfaces = rig.sim.interfaces()
    assert "tap5" in interfaces
    assert set(interfaces["bridge0"].members) == {"igb0", "tap0"}
    assert interfaces["bridge0"].up
    assert image.stat().st_size == 1 << 30
    assert rig.ledger() == Ledger(
        interfaces={"tap0": CreatedInterface(kind="tap", guest="guestname")},
        members={("bridge0", "tap0"): "guestname"},
        disks={"/vm/guestname/guest.img": "guestname"},
        orders={"guestname": 0},
    )

    plan = rig.cli("plan")

    assert (plan.returncode, plan.stdout) == (0, "converged: nothing to do\n")
