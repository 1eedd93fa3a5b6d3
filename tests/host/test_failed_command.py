"""One failing host command: what depends on it waits, everything else converges, `apply`
says which argv failed and why, and the next pass finishes the job."""

from __future__ import annotations

from e2e_helpers import HANDBOOK_SPEC, OBSERVE, CliRig, stopped_guest

SECOND_GUEST = stopped_guest(
    "second", "/vm/second/disk.img", size="2G", nic='tap = "tap1"\nbridge = "bridge0"'
)
BUSY = "ifconfig: BRDGADD tap1: Device busy"


def test_one_failed_command_leaves_the_others_converged_and_the_next_apply_retries(
    rig: CliRig,
) -> None:
    rig.write_spec("guestname", HANDBOOK_SPEC)
    rig.write_spec("second", SECOND_GUEST)
    rig.sim.inject_fault("ifconfig bridge0 addm tap1", stderr=BUSY)

    proc, ran = rig.logged("apply")

    assert proc.returncode == 1
    failed = [line for line in proc.stdout.splitlines() if "FAILED" in line]
    assert len(failed) == 1, proc.stdout
    assert "ifconfig bridge0 addm tap1" in failed[0]
    assert BUSY in failed[0]
    assert ["ifconfig", "bridge0", "addm", "tap1"] in ran
    interfaces = rig.sim.interfaces()
    assert set(interfaces["bridge0"].members) == {"igb0", "tap0"}
    assert interfaces["bridge0"].up  # does not depend on the failed membership
    assert "tap1" in interfaces
    assert rig.sim.path("/vm/guestname/guest.img").stat().st_size == 16 << 30
    assert rig.sim.path("/vm/second/disk.img").stat().st_size == 2 << 30
    assert ("bridge0", "tap1") not in rig.ledger().members
    assert rig.ledger().interfaces["tap1"].guest == "second"

    pending = rig.cli("plan")

    assert pending.returncode == 2
    assert pending.stdout.splitlines() == ["~ add tap1 to bridge0 for guest second"]

    rig.sim.clear_faults()
    proc, ran = rig.logged("apply")

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert ran == [*OBSERVE, ["ifconfig", "bridge0", "addm", "tap1"]]
    assert set(rig.sim.interfaces()["bridge0"].members) == {"igb0", "tap0", "tap1"}
    assert rig.ledger().members[("bridge0", "tap1")] == "second"
    assert rig.cli("plan").returncode == 0


def test_a_failed_observation_blocks_only_what_needs_it_and_the_next_apply_finishes(
    rig: CliRig,
) -> None:
    rig.write_spec("second", SECOND_GUEST)
    rig.sim.inject_fault("kldstat -v", count=1, stderr="kldstat: simulated EIO")

    blind, ran = rig.logged("apply")

    assert blind.returncode == 1
    assert "kldstat -v" in blind.stderr and "simulated EIO" in blind.stderr
    # Which modules are loaded is unknown, so none is loaded; the rest needs no kldstat.
    assert ran == [
        *OBSERVE,
        ["sysctl", "net.link.tap.up_on_open=1"],
        ["ifconfig", "bridge0", "create"],
        ["ifconfig", "tap1", "create"],
        ["ifconfig", "bridge0", "addm", "igb0"],
        ["ifconfig", "bridge0", "addm", "tap1"],
        ["ifconfig", "bridge0", "up"],
    ]
    assert rig.sim.path("/vm/second/disk.img").exists()

    proc, ran = rig.logged("apply")

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert ran == [*OBSERVE, ["kldload", "vmm"], ["kldload", "nmdm"]]
    assert rig.cli("plan").returncode == 0


def test_a_failed_bridge_skips_its_dependents(rig: CliRig) -> None:
    rig.write_spec("second", SECOND_GUEST)
    denied = "ifconfig: SIOCIFCREATE2: Operation not permitted"
    rig.sim.inject_fault("ifconfig bridge0 create", stderr=denied)
    proc, ran = rig.logged("apply")

    assert proc.returncode == 1
    assert ran == [
        *OBSERVE,
        ["kldload", "vmm"],
        ["kldload", "nmdm"],
        ["kldload", "if_bridge"],  # GENERIC has if_tuntap, not if_bridge
        ["sysctl", "net.link.tap.up_on_open=1"],
        ["ifconfig", "bridge0", "create"],
        ["ifconfig", "tap1", "create"],
    ]
    skipped = [line for line in proc.stdout.splitlines() if line.endswith("which failed)")]
    assert [line.split(":")[0] for line in skipped] == [
        "~ add igb0 to bridge0",
        "~ add tap1 to bridge0 for guest second",
        "~ bring bridge0 up",
    ]
    assert denied in proc.stdout
    assert proc.stdout.splitlines()[-1] == (
        "6 changed, 0 pending for run, 4 failed (3 skipped: they need what failed); "
        "the next apply retries them"
    )
    assert rig.sim.path("/vm/second/disk.img").exists()
