"""A zvol node published late leaves the simulated host free meanwhile: the child that
publishes it must not keep the state lock its `zfs create` held, or every other tool (a
loader, bhyve, the next `zfs list`) would wait for the node too."""

from __future__ import annotations

import fcntl
import os

from sim_helpers import Run

from reconciler.sim import SimulatedHost
from reconciler.sim import state as st


def test_the_late_node_publisher_holds_no_lock(host: SimulatedHost, tool: Run) -> None:
    host.delay_zvol_nodes(30.0)
    assert tool("zfs", "create", "-V", "1G", "zroot/a").returncode == 0
    assert not host.path("/dev/zvol/zroot/a").exists()  # its publisher is still waiting
    fd = os.open(os.path.join(st.sim_dir(str(host.root)), "lock"), os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # BlockingIOError while it is held
    finally:
        os.close(fd)
