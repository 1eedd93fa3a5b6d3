"""An interface description that is not UTF-8 (reference §8.11) breaks neither `plan` nor
`apply`: the driver reads host output as bytes."""

from __future__ import annotations

from e2e_helpers import HANDBOOK_SPEC, CliRig

RAW = b"uplink \xe9\xff\xfe"  # set from a Latin-1 terminal, or by any program


def describe(rig: CliRig, interface: str, raw: bytes) -> None:
    # argv is bytes on FreeBSD: surrogateescape hands these exact bytes to the simulated tool.
    done = rig.sim.run(
        ["ifconfig", interface, "description", raw.decode("utf-8", "surrogateescape")]
    )
    assert done.returncode == 0, done.stderr


def test_plan_and_apply_read_a_description_that_is_not_utf8(rig: CliRig) -> None:
    describe(rig, "igb0", RAW)
    rig.write_spec("guestname", HANDBOOK_SPEC)

    plan = rig.cli("plan")
    assert plan.returncode == 2, plan.stderr  # changes pending
    assert "create tap0" in plan.stdout

    applied = rig.cli("apply")
    assert applied.returncode == 0, applied.stderr
    assert rig.sim.interfaces()["bridge0"].members == ("tap0", "igb0")

    describe(rig, "tap0", RAW)
    again = rig.cli("apply")
    assert again.returncode == 0, again.stderr
    assert rig.sim.interfaces()["tap0"].description == RAW.decode("utf-8", "surrogateescape")
    assert rig.cli("plan").returncode == 0  # converged
