"""Changes made behind the reconciler's back are repaired by the next `apply`, and only they
are touched: the exact commands it runs are checked, and the host ends as it was."""

from __future__ import annotations

import pytest
from e2e_helpers import HANDBOOK_SPEC, OBSERVE, CliRig

MEMBER_REMOVED = ["ifconfig", "bridge0", "deletem", "tap0"]
TAP_DESTROYED = ["ifconfig", "tap0", "destroy"]
BRIDGE_DOWN = ["ifconfig", "bridge0", "down"]
UP_ON_OPEN_RESET = ["sysctl", "net.link.tap.up_on_open=0"]

CASES = {
    "member removed": ([MEMBER_REMOVED], [["ifconfig", "bridge0", "addm", "tap0"]]),
    # Destroying a tap also takes it out of its bridge, as on FreeBSD.
    "tap destroyed": (
        [TAP_DESTROYED],
        [["ifconfig", "tap0", "create"], ["ifconfig", "bridge0", "addm", "tap0"]],
    ),
    "bridge downed": ([BRIDGE_DOWN], [["ifconfig", "bridge0", "up"]]),
    "up_on_open reset": ([UP_ON_OPEN_RESET], [["sysctl", "net.link.tap.up_on_open=1"]]),
    "all at once": (
        [MEMBER_REMOVED, BRIDGE_DOWN, UP_ON_OPEN_RESET, TAP_DESTROYED],
        [
            ["sysctl", "net.link.tap.up_on_open=1"],
            ["ifconfig", "tap0", "create"],
            ["ifconfig", "bridge0", "addm", "tap0"],
            ["ifconfig", "bridge0", "up"],
        ],
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_next_apply_repairs_exactly_the_drift(rig: CliRig, case: str) -> None:
    drift, repair = CASES[case]
    rig.write_spec("guestname", HANDBOOK_SPEC)
    assert rig.cli("apply").returncode == 0
    interfaces = rig.sim.interfaces()
    modules = rig.sim.modules()
    ledger = rig.ledger()
    image = rig.sim.path("/vm/guestname/guest.img").stat()
    for argv in drift:
        done = rig.sim.run(argv)
        assert done.returncode == 0, done.stderr

    proc, ran = rig.logged("apply")

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert ran == OBSERVE + repair
    assert rig.sim.interfaces() == interfaces
    assert rig.sim.modules() == modules
    assert rig.sim.sysctl("net.link.tap.up_on_open") == "1"
    assert rig.ledger() == ledger
    after = rig.sim.path("/vm/guestname/guest.img").stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (
        image.st_ino,
        image.st_size,
        image.st_mtime_ns,
    )
