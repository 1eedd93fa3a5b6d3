"""A new zvol whose /dev/zvol node appears a moment after `zfs create` returns boots on its
first try: the driver waits for the node (bounded) before the boot is handed on."""

from __future__ import annotations

from daemon_harness import Harness

ZVOL_GUEST = 'name = "db"\nmemory = "256M"\n\n[[disk]]\nzvol = "zroot/vm/db"\nsize = "1G"\n'


def test_a_late_zvol_node_costs_no_failed_boot(harness: Harness) -> None:
    harness.sim.delay_zvol_nodes(1.0)
    harness.put("db", ZVOL_GUEST)
    harness.start()
    harness.wait_running("db")
    assert harness.events("guest.exited", guest="db") == []
    assert [argv[0] for argv in harness.commands_for("db")].count("bhyve") == 1
