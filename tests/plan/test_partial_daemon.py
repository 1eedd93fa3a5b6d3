"""The daemon with one observation failing: only the guests that need it wait.

Reproduces what a hostile tester found: with `zfs list` failing, a new file-backed guest never
started and a removed one was never stopped, because the whole observation raised.
"""

from __future__ import annotations

from daemon_harness import Harness, guest_toml, wait_for

ZFS_DOWN = "cannot open 'zroot': pool I/O is currently suspended"
ZVOL_GUEST = 'name = "vz"\nmemory = "256M"\n\n[[disk]]\nzvol = "zroot/vm/vz"\nsize = "1G"\n'


def test_zfs_failing_blocks_only_the_zvol_guest(harness: Harness) -> None:
    harness.put("old", guest_toml("old"))
    harness.start()
    old_pid = harness.wait_running("old")

    harness.sim.inject_fault("zfs list *", stderr=ZFS_DOWN)
    harness.put("vz", ZVOL_GUEST)
    harness.put("new", guest_toml("new"))
    harness.remove("old")

    harness.wait_running("new")
    wait_for(lambda: harness.guest("old") is None, "old to be stopped and retired")
    assert harness.bhyve_processes("old") == []
    assert old_pid not in harness.bhyve_processes("new")
    status = harness.wait_status(
        lambda s: any("guest vz waits" in e for e in s.host_errors),
        "status to say vz waits for zfs",
    )
    assert any(e.startswith("observe: zfs list") and ZFS_DOWN in e for e in status.host_errors)
    assert harness.sim.boots("vz") == 0
    vz = harness.guest("vz")  # a row that says why it waits; no supervisor tries to boot it
    assert vz is not None and vz.state == "waiting" and vz.last_error is not None
    assert "zfs" in vz.last_error

    # Once zfs answers again, the next pass creates the volume and boots the guest.
    harness.sim.clear_faults()
    harness.put("vz", "order = 1\n" + ZVOL_GUEST)
    harness.wait_running("vz")
    assert harness.sim.zvols() == {"zroot/vm/vz": 1 << 30}
