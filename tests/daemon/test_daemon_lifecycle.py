"""The daemon's own life against its guests': detaching (SIGUSR1), being killed in the middle
of a stop, guests that crashed or lost their file while no daemon ran, SIGHUP, next-boot edits."""

from __future__ import annotations

import signal

from daemon_harness import VISIBLE_BACKOFF, Harness, guest_toml, wait_for


def kill_daemon(harness: Harness) -> None:
    daemon = harness.daemons[-1]
    daemon.send_signal(signal.SIGKILL)
    daemon.wait(timeout=10)


def test_sigusr1_detaches_leaving_guests_running_for_the_next_daemon(harness: Harness) -> None:
    harness.put("vm1", guest_toml("vm1"))
    daemon = harness.start()
    pid = harness.wait_running("vm1")

    daemon.send_signal(signal.SIGUSR1)

    assert daemon.wait(timeout=30) == 0
    assert harness.events("daemon.exited", detached=True)
    assert harness.bhyve_processes("vm1") == [pid]
    assert harness.events("guest.stopping") == []
    harness.start()
    assert harness.wait_running("vm1") == pid
    assert harness.sim.boots("vm1") == 1


def test_a_stop_interrupted_by_a_daemon_crash_is_finished_by_the_next_daemon(
    harness: Harness,
) -> None:
    harness.put("vm1", guest_toml("vm1"))
    harness.start()
    pid = harness.wait_running("vm1")
    harness.sim.set_acpi("vm1", False)
    assert harness.cli("stop", "vm1", "--no-wait").returncode == 0
    harness.wait_state("vm1", "stopping")

    kill_daemon(harness)
    assert harness.bhyve_processes("vm1") == [pid]  # it ignored the power button
    harness.start()

    harness.wait_state("vm1", "held")
    assert harness.bhyve_processes("vm1") == []
    assert "vm1" not in harness.sim.vms()
    assert [e["guest"] for e in harness.events("guest.forced_poweroff")] == ["vm1"]
    assert harness.sim.boots("vm1") == 1


def test_a_crash_while_no_daemon_ran_is_restarted_with_backoff(harness: Harness) -> None:
    harness.configure(crash_backoff=VISIBLE_BACKOFF)
    harness.put("vm1", guest_toml("vm1"))
    harness.start()
    harness.wait_running("vm1")
    kill_daemon(harness)
    harness.sim.guest_do("vm1", "fail")
    wait_for(lambda: not harness.bhyve_processes("vm1"), "vm1's bhyve to exit")

    harness.start()

    row = harness.wait_state("vm1", "crash-loop")
    assert (row.last_exit, row.last_exit_meaning) == (4, "error")
    harness.wait_boots("vm1", 2)
    harness.wait_running("vm1")
    # The crashed VM is destroyed before the new boot (the first pass may try twice: harmless).
    after_crash = tools_of(harness, "vm1")[2:]
    assert after_crash[-2:] == ["bhyveload", "bhyve"]
    assert set(after_crash[:-2]) == {"bhyvectl --destroy"}


def test_a_file_removed_while_no_daemon_ran_stops_the_adopted_guest(harness: Harness) -> None:
    harness.put("vm1", guest_toml("vm1"))
    harness.start()
    pid = harness.wait_running("vm1")
    kill_daemon(harness)
    harness.remove("vm1")

    harness.start()

    wait_for(lambda: harness.guest("vm1") is None, "vm1 to leave the status")
    assert [e["pid"] for e in harness.events("guest.adopted", guest="vm1")] == [pid]
    (exited,) = harness.events("guest.exited", guest="vm1")
    assert (exited["pid"], exited["meaning"]) == (pid, "poweroff")
    assert harness.bhyve_processes("vm1") == []
    assert "vm1" not in harness.sim.vms()
    assert harness.sim.boots("vm1") == 1


def test_sighup_rereads_the_stop_timeout(harness: Harness) -> None:
    harness.configure(stop_timeout="1h")
    harness.put("vm1", guest_toml("vm1"))
    daemon = harness.start()
    harness.wait_running("vm1")
    harness.sim.set_acpi("vm1", False)

    # Not the harness's default (1s) either: what applies is what the reload read.
    harness.configure(stop_timeout="500ms")
    daemon.send_signal(signal.SIGHUP)
    wait_for(lambda: harness.events("daemon.reload"), "the daemon to reload")
    harness.remove("vm1")

    wait_for(lambda: harness.guest("vm1") is None, "vm1 to be stopped and removed", timeout=20)
    (forced,) = harness.events("guest.forced_poweroff", guest="vm1")
    assert forced["after"] == 0.5


def test_next_boot_edits_wait_for_the_guests_own_reboot(harness: Harness) -> None:
    harness.put("vm1", guest_toml("vm1", cpus=1, extra='on_change = "next-boot"'))
    harness.start()
    first = harness.wait_running("vm1")
    harness.put("vm1", guest_toml("vm1", cpus=2, extra='on_change = "next-boot"'))
    # Any pass that boots `marker` has read the edit above, renamed in before it.
    harness.put("marker", guest_toml("marker"))
    harness.wait_running("marker")

    assert harness.bhyve_processes("vm1") == [first]
    harness.sim.guest_do("vm1", "reboot")

    harness.wait_running("vm1", not_pid=first)
    bhyves = [argv for argv in harness.commands_for("vm1") if argv[0] == "bhyve"]
    assert [argv[argv.index("-c") + 1] for argv in bhyves] == ["1", "2"]
    # New CPUs need a new VM: destroyed before the loader runs again.
    assert tools_of(harness, "vm1")[2:] == ["bhyvectl --destroy", "bhyveload", "bhyve"]


def tools_of(harness: Harness, name: str) -> list[str]:
    return [
        f"bhyvectl {argv[2]}" if argv[0] == "bhyvectl" else argv[0]
        for argv in harness.commands_for(name)
    ]
