"""A kernel without if_tuntap, if_bridge or nmdm built in (a custom kernel): `apply` loads what
the guests need first, as vm-bhyve's `vm init` does, and only then sets the tap sysctl, which
does not exist before if_tuntap is loaded (reference §8.7)."""

from __future__ import annotations

from pathlib import Path

from e2e_helpers import HANDBOOK_SPEC, OBSERVE, make_rig

from reconciler.sim import SimulatedHost


def test_apply_loads_every_module_the_handbook_guest_needs(tmp_path: Path) -> None:
    SimulatedHost(tmp_path / "host").setup(compiled_in=())  # before the rig: a custom kernel
    rig = make_rig(tmp_path)
    rig.write_spec("guestname", HANDBOOK_SPEC)

    proc, ran = rig.logged("apply")

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert ran[: len(OBSERVE) + 5] == [
        *OBSERVE,
        ["kldload", "vmm"],
        ["kldload", "nmdm"],
        ["kldload", "if_bridge"],
        ["kldload", "if_tuntap"],
        ["sysctl", "net.link.tap.up_on_open=1"],
    ]
    assert {"vmm", "nmdm", "if_bridge", "if_tuntap"} <= rig.sim.modules()
    assert rig.sim.sysctl("net.link.tap.up_on_open") == "1"
    assert rig.sim.interfaces()["bridge0"].members == ("tap0", "igb0")
    assert rig.cli("plan").returncode == 0
