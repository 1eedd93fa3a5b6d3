"""Exit status 1 decided with context, on the simulated host with real processes (reference
§8.2, §8.3): a loader short of memory for a moment and a VM destroyed from outside are failures,
retried with backoff and shown as such in status; neither is mistaken for the guest stopping."""

from __future__ import annotations

import pytest
from daemon_harness import Harness, guest_toml, wait_for

BACKOFF = 2.0  # long enough to see the wait in status, short enough to see the boot after it


def with_backoff(harness: Harness) -> None:
    harness.set_timings(crash_backoff=f"{BACKOFF}s")


def test_a_loader_short_of_memory_boots_after_backoff_and_status_says_why(
    harness: Harness,
) -> None:
    with_backoff(harness)
    harness.sim.fail_loaders(1, call="vm_create")
    harness.put("vm1", guest_toml("vm1"))
    harness.start()

    waiting = harness.wait_state("vm1", "crash-loop")
    assert (waiting.last_exit, waiting.last_exit_meaning) == (1, "loader-error")
    assert waiting.last_error == (
        "loader exited with status 1 (loader-error): vm_create: Cannot allocate memory"
    )
    assert waiting.next_restart_at is not None

    harness.wait_running("vm1")
    assert harness.sim.boots("vm1") == 1
    exited = harness.events("guest.exited", guest="vm1")
    assert [(e["phase"], e["status"], e["meaning"]) for e in exited] == [
        ("loader", 1, "loader-error")
    ]
    assert harness.events("guest.restart_scheduled", guest="vm1", delay=BACKOFF)


def test_a_loader_menu_quit_still_leaves_the_guest_off(harness: Harness) -> None:
    harness.sim.set_loader_exit("vm1", 1)
    harness.put("vm1", guest_toml("vm1"))
    harness.start()
    row = harness.wait_state("vm1", "powered-off")
    assert (row.last_exit_meaning, row.last_error) == ("loader-quit", None)


@pytest.mark.parametrize(
    ("release", "status", "meaning"),
    [("13.4-RELEASE", 1, "vm-destroyed"), ("14.2-RELEASE", 1, "vm-destroyed"),
     ("15.0-CURRENT", 4, "error")],
)  # fmt: skip
def test_a_vm_destroyed_from_outside_is_a_failure_not_a_power_off(
    harness: Harness, release: str, status: int, meaning: str
) -> None:
    harness.sim.set_release(release)
    harness.put("vm1", guest_toml("vm1"))
    harness.start()
    first = harness.wait_running("vm1")

    done = harness.sim.run(["bhyvectl", "--vm=vm1", "--destroy"])  # behind the daemon's back
    assert done.returncode == 0, done.stderr

    harness.wait_running("vm1", not_pid=first)  # booted again: not left powered-off
    row = harness.guest("vm1")
    assert row is not None and (row.last_exit, row.last_exit_meaning) == (status, meaning)
    assert harness.sim.boots("vm1") == 2
    (exited,) = harness.events("guest.exited", guest="vm1")
    assert (exited["status"], exited["meaning"]) == (status, meaning)
    if status == 1:  # 13.x/14.x: vm_loop() says why before exit(1)
        assert exited["reason"] == (
            "its VM was destroyed under it; bhyve said: vm_run error -1, errno 6"
        )
    assert harness.events("guest.restart_scheduled", guest="vm1")


def test_a_guest_power_off_still_stays_off(harness: Harness) -> None:
    harness.put("vm1", guest_toml("vm1"))
    harness.start()
    harness.wait_running("vm1")
    harness.sim.guest_do("vm1", "poweroff")
    row = harness.wait_state("vm1", "powered-off")
    assert (row.last_exit, row.last_exit_meaning, row.last_error) == (1, "poweroff", None)
    wait_for(lambda: "vm1" not in harness.sim.vms(), "the powered-off VM to be destroyed")
