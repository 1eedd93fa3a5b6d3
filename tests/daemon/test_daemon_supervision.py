"""Supervision through the real daemon (issue 4): reboots, power-offs, crash backoff, adoption
after a daemon crash, forced power-off of guests that ignore ACPI, and graceful stops."""

from __future__ import annotations

import signal
import time

from daemon_harness import ROOM, VISIBLE_BACKOFF, Harness, event_time, guest_toml, wait_for


def tools(argvs: list[list[str]]) -> list[str]:
    return [" ".join(argv[:2]) if argv[0] == "bhyvectl" else argv[0] for argv in argvs]


def test_reboot_runs_the_loader_then_bhyve_again_without_destroying_the_vm(
    harness: Harness,
) -> None:
    harness.put("vm1", guest_toml("vm1"))
    harness.start()
    first = harness.wait_running("vm1")
    seen = len(harness.commands_for("vm1"))

    harness.sim.guest_do("vm1", "reboot")

    second = harness.wait_running("vm1", not_pid=first)
    assert tools(harness.commands_for("vm1")[seen:]) == ["bhyveload", "bhyve"]
    assert harness.sim.boots("vm1") == 2
    assert harness.bhyve_processes("vm1") == [second]
    row = harness.guest("vm1")
    assert row is not None
    assert (row.boots, row.last_exit, row.last_exit_meaning) == (2, 0, "reboot")
    exited = harness.events("guest.exited", guest="vm1")
    assert [(e["pid"], e["status"], e["meaning"]) for e in exited] == [(first, 0, "reboot")]


def test_power_off_destroys_the_vm_and_it_stays_off_until_start(harness: Harness) -> None:
    harness.put("vm1", guest_toml("vm1"))
    harness.start()
    harness.wait_running("vm1")
    seen = len(harness.commands_for("vm1"))

    harness.sim.guest_do("vm1", "poweroff")

    row = harness.wait_state("vm1", "powered-off")
    assert (row.last_exit, row.last_exit_meaning, row.pid) == (1, "poweroff", None)
    assert tools(harness.commands_for("vm1")[seen:]) == ["bhyvectl --vm=vm1"]
    assert harness.commands_for("vm1")[-1] == ["bhyvectl", "--vm=vm1", "--destroy"]
    assert "vm1" not in harness.sim.vms()
    time.sleep(ROOM)  # room for a wrong restart to happen
    assert harness.state("vm1") == "powered-off"
    assert harness.sim.boots("vm1") == 1
    assert harness.bhyve_processes("vm1") == []

    done = harness.cli("start", "vm1")

    assert done.returncode == 0, done.stderr
    assert harness.wait_running("vm1") in harness.bhyve_processes("vm1")
    assert harness.sim.boots("vm1") == 2


def test_restart_always_boots_a_guest_that_powered_itself_off(harness: Harness) -> None:
    harness.put("vm1", guest_toml("vm1", extra='restart = "always"'))
    harness.start()
    first = harness.wait_running("vm1")
    seen = len(harness.commands_for("vm1"))

    harness.sim.guest_do("vm1", "poweroff")

    harness.wait_boots("vm1", 2)
    second = harness.wait_running("vm1")
    assert second != first
    # A power-off ends the VM (unlike a reboot): destroyed, then a fresh boot.
    assert tools(harness.commands_for("vm1")[seen:]) == [
        "bhyvectl --vm=vm1", "bhyveload", "bhyve",
    ]  # fmt: skip
    row = harness.guest("vm1")
    assert row is not None and (row.last_exit, row.last_exit_meaning) == (1, "poweroff")


def test_crashes_in_a_row_are_restarted_after_growing_delays(harness: Harness) -> None:
    # Steps far enough apart that the measured delays keep their order on a busy machine.
    step = VISIBLE_BACKOFF
    harness.configure(crash_backoff=step)
    harness.put("vm1", guest_toml("vm1"))
    harness.start()
    for crash in range(1, 4):
        harness.wait_running("vm1")
        harness.sim.guest_do("vm1", "triple-fault")
        row = harness.wait_state("vm1", "crash-loop")
        assert (row.last_exit, row.last_exit_meaning) == (3, "triple-fault")
        assert row.next_restart_at is not None
        harness.wait_boots("vm1", crash + 1)
    harness.wait_running("vm1")

    exits = harness.events("guest.exited", guest="vm1")
    boots = harness.events("guest.booting", guest="vm1")
    assert len(exits) == 3 and len(boots) == 4
    delays = [event_time(b) - event_time(e) for e, b in zip(exits, boots[1:], strict=True)]
    assert delays[0] < delays[1] < delays[2], delays
    # vmrun.sh would reboot at once; the supervisor waits at least the first backoff step.
    assert delays[0] >= 0.9 * step, delays
    scheduled = [e["delay"] for e in harness.events("guest.restart_scheduled", guest="vm1")]
    assert scheduled == sorted(scheduled) and len(set(scheduled)) == 3, scheduled
    assert scheduled[0] == step, scheduled


def test_guests_outlive_a_killed_daemon_and_the_next_one_adopts_them(harness: Harness) -> None:
    harness.put("stays", guest_toml("stays"))
    harness.put("reboots", guest_toml("reboots"))
    first_daemon = harness.start()
    stays = harness.wait_running("stays")
    reboots = harness.wait_running("reboots")

    first_daemon.send_signal(signal.SIGKILL)
    first_daemon.wait(timeout=10)
    # Nobody supervises now: the guest reboots and its shim records the exit.
    harness.sim.guest_do("reboots", "reboot")
    exit_record = harness.run_dir / "guests" / "reboots" / "exit"
    wait_for(lambda: exit_record.exists() and not harness.bhyve_processes("reboots"),
             "the reboot to be recorded")  # fmt: skip
    assert harness.bhyve_processes("stays") == [stays]
    assert harness.sim.boots("reboots") == 1

    harness.start()

    assert harness.wait_running("stays") == stays
    rebooted = harness.wait_running("reboots", not_pid=reboots)
    assert harness.bhyve_processes("stays") == [stays]
    assert harness.bhyve_processes("reboots") == [rebooted]
    assert harness.sim.boots("stays") == 1
    assert harness.sim.boots("reboots") == 2
    assert tools(harness.commands_for("stays")) == ["bhyveload", "bhyve"]
    assert tools(harness.commands_for("reboots")) == ["bhyveload", "bhyve"] * 2
    adopted = harness.events("guest.adopted")
    assert [(e["guest"], e["pid"]) for e in adopted] == [("stays", stays)]
    row = harness.guest("reboots")
    assert row is not None and (row.last_exit, row.last_exit_meaning) == (0, "reboot")


def test_guests_that_ignore_acpi_are_forced_off_in_parallel(harness: Harness) -> None:
    names = [f"deaf{i}" for i in range(10)]
    stop_timeout = 1.0
    harness.configure(stop_timeout="1s")
    for name in names:
        harness.put(name, guest_toml(name))
    daemon = harness.start()
    for name in names:
        harness.wait_running(name)
        harness.sim.set_acpi(name, False)

    began = time.monotonic()
    daemon.send_signal(signal.SIGTERM)
    status = daemon.wait(timeout=60)
    took = time.monotonic() - began

    assert status == 0
    # One after another would take at least 10 x stop_timeout.
    assert took < 5 * stop_timeout + 1.0, took
    forced = {e["guest"]: e for e in harness.events("guest.forced_poweroff")}
    assert sorted(forced) == names
    for name in names:
        (stopping,) = harness.events("guest.stopping", guest=name)
        waited = event_time(forced[name]) - event_time(stopping)
        assert waited >= stop_timeout * 0.9, (name, waited)
        assert ["bhyvectl", f"--vm={name}", "--destroy"] in harness.commands_for(name)
        assert harness.bhyve_processes(name) == []
    assert harness.sim.vms() == frozenset()


def test_state_stopped_stops_the_guest_gracefully_and_destroys_the_vm(
    harness: Harness,
) -> None:
    harness.put("vm1", guest_toml("vm1"))
    harness.start()
    pid = harness.wait_running("vm1")

    harness.put("vm1", guest_toml("vm1", extra='state = "stopped"'))

    harness.wait_state("vm1", "stopped")
    wait_for(lambda: "vm1" not in harness.sim.vms(), "vm1's VM to be destroyed")
    (exited,) = harness.events("guest.exited", guest="vm1")
    # Powered off by its own ACPI handler, not forced.
    assert (exited["pid"], exited["status"], exited["meaning"]) == (pid, 1, "poweroff")
    assert harness.events("guest.forced_poweroff") == []
    assert harness.commands_for("vm1")[-1] == ["bhyvectl", "--vm=vm1", "--destroy"]
    assert harness.bhyve_processes("vm1") == []
    time.sleep(ROOM)  # room for a wrong boot to happen
    assert harness.state("vm1") == "stopped"
    assert harness.sim.boots("vm1") == 1
