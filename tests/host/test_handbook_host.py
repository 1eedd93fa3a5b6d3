"""`apply` turns an empty host into the Handbook's bhyve host, and a no-op pass costs the same
few commands whatever the number of guests (DESIGN.md rule 7)."""

from __future__ import annotations

from e2e_helpers import HANDBOOK_SPEC, OBSERVE, CliRig, sparse_file, stopped_guest


def test_apply_on_an_empty_host_builds_the_handbook_host(rig: CliRig) -> None:
    rig.write_spec("guestname", HANDBOOK_SPEC)
    before = rig.sim.interfaces()
    assert "vmm" not in rig.sim.modules()
    assert rig.sim.sysctl("net.link.tap.up_on_open") == "0"
    assert "tap0" not in before and "bridge0" not in before

    proc = rig.cli("apply")

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert {"vmm", "nmdm"} <= rig.sim.modules()
    assert rig.sim.sysctl("net.link.tap.up_on_open") == "1"
    after = rig.sim.interfaces()
    assert set(after) == set(before) | {"tap0", "bridge0"}
    assert after["tap0"].kind == "tap"
    assert after["bridge0"].kind == "bridge"
    assert after["bridge0"].up
    assert set(after["bridge0"].members) == {"igb0", "tap0"}
    for name, iface in before.items():
        assert after[name] == iface  # igb0, em0, lo0 untouched
    image = rig.sim.path("/vm/guestname/guest.img").stat()
    assert image.st_size == 16 * 1024**3
    assert image.st_blocks * 512 < 1024**2  # sparse, as truncate -s 16G makes it

    plan = rig.cli("plan")

    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert plan.stdout == "converged: nothing to do\n"


def test_a_no_op_pass_over_500_guests_runs_the_commands_of_a_pass_over_one(rig: CliRig) -> None:
    rig.write_spec("guestname", HANDBOOK_SPEC)
    assert rig.cli("apply").returncode == 0

    one, ran_for_one = rig.logged("plan")

    for i in range(499):
        disk = f"/vm/many/g{i:03d}.img"
        sparse_file(rig.sim.path(disk), 1 << 30)
        rig.write_spec(f"g{i:03d}", stopped_guest(f"g{i:03d}", disk, size="1G"))

    many, ran_for_500 = rig.logged("plan")

    assert (one.returncode, one.stdout) == (0, "converged: nothing to do\n")
    assert (many.returncode, many.stdout) == (0, "converged: nothing to do\n"), many.stderr
    assert len(ran_for_500) == len(ran_for_one)
    assert ran_for_500 == ran_for_one == OBSERVE
