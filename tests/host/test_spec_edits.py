"""An edited spec converges in one `apply`: what the edit made unneeded is undone in the same
pass, and only if the reconciler made it."""

from __future__ import annotations

from e2e_helpers import OBSERVE, CliRig, stopped_guest


def test_moving_a_nic_to_another_bridge_removes_the_emptied_bridge_in_the_same_apply(
    rig: CliRig,
) -> None:
    rig.write_spec("a", stopped_guest("a", "/vm/a.img", nic='tap = "tap0"\nbridge = "bridge1"'))
    assert rig.cli("apply").returncode == 0
    assert rig.sim.interfaces()["bridge1"].members == ("tap0",)

    rig.write_spec("a", stopped_guest("a", "/vm/a.img", nic='tap = "tap0"\nbridge = "bridge2"'))
    proc, ran = rig.logged("apply")

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert ran == [
        *OBSERVE,
        ["ifconfig", "bridge2", "create"],
        ["ifconfig", "bridge1", "deletem", "tap0"],
        ["ifconfig", "bridge2", "addm", "tap0"],
        ["ifconfig", "bridge2", "up"],
        ["ifconfig", "bridge1", "destroy"],
    ]
    interfaces = rig.sim.interfaces()
    assert "bridge1" not in interfaces
    assert interfaces["bridge2"].members == ("tap0",)
    assert "bridge1" not in rig.ledger().interfaces
    plan = rig.cli("plan")
    assert (plan.returncode, plan.stdout) == (0, "converged: nothing to do\n")


def test_a_bridge_someone_else_uses_is_left_when_the_nic_moves_away(rig: CliRig) -> None:
    rig.write_spec("a", stopped_guest("a", "/vm/a.img", nic='tap = "tap0"\nbridge = "bridge1"'))
    assert rig.cli("apply").returncode == 0
    assert rig.sim.run(["ifconfig", "tap9", "create"]).returncode == 0
    assert rig.sim.run(["ifconfig", "bridge1", "addm", "tap9"]).returncode == 0

    rig.write_spec("a", stopped_guest("a", "/vm/a.img", nic='tap = "tap0"\nbridge = "bridge0"'))
    proc, ran = rig.logged("apply")

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert ran == [
        *OBSERVE,
        ["ifconfig", "bridge1", "deletem", "tap0"],
        ["ifconfig", "bridge0", "addm", "tap0"],
    ]
    assert rig.sim.interfaces()["bridge1"].members == ("tap9",)
