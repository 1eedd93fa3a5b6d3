"""Operator commands against the real daemon: `status`, `start`, `stop`, `restart`, and what
they say when no daemon runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from daemon_harness import ROOM, Harness, guest_toml


def test_status_shows_every_guest_from_the_running_daemon(harness: Harness) -> None:
    harness.put("vm1", guest_toml("vm1"))
    harness.put("vm2", guest_toml("vm2", extra='state = "stopped"'))
    harness.start()
    pid = harness.wait_running("vm1")
    harness.wait_state("vm2", "stopped")

    table = harness.cli("status")
    as_json = harness.cli("status", "--json")

    assert table.returncode == 0, table.stderr
    header, *rows = table.stdout.splitlines()
    assert header.split()[:7] == ["NAME", "STATE", "CPUS", "MEMORY", "LOADER", "CONSOLE/VNC", "PID"]
    assert [row.split()[:7] for row in rows] == [
        ["vm1", "running", "1", "256M", "bhyveload", "nmdm-vm1.1B", str(pid)],
        ["vm2", "stopped", "1", "256M", "bhyveload", "nmdm-vm2.1B", "-"],
    ]
    assert as_json.returncode == 0, as_json.stderr
    data = json.loads(as_json.stdout)
    assert data["daemon_running"] is True
    assert [(g["name"], g["state"], g["pid"]) for g in data["guests"]] == [
        ("vm1", "running", pid),
        ("vm2", "stopped", None),
    ]


def test_stop_holds_a_guest_and_start_and_restart_boot_it(harness: Harness) -> None:
    harness.put("vm1", guest_toml("vm1"))
    harness.start()
    first = harness.wait_running("vm1")

    stopped = harness.cli("stop", "vm1")

    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout.splitlines()[-1] == "vm1: held (it shut down on ACPI)"
    assert harness.state("vm1") == "held"
    assert "vm1" not in harness.sim.vms()
    (exited,) = harness.events("guest.exited", guest="vm1")
    assert (exited["pid"], exited["meaning"]) == (first, "poweroff")
    time.sleep(ROOM)  # room for a wrong boot to happen: a held guest stays off
    assert (harness.state("vm1"), harness.sim.boots("vm1")) == ("held", 1)

    started = harness.cli("start", "vm1")

    assert started.returncode == 0, started.stderr
    second = harness.wait_running("vm1", not_pid=first)
    assert started.stdout.splitlines()[-1] == f"vm1: running (pid {second})"
    assert harness.sim.boots("vm1") == 2

    restarted = harness.cli("restart", "vm1")

    assert restarted.returncode == 0, restarted.stderr
    third = harness.wait_running("vm1", not_pid=second)
    assert harness.bhyve_processes("vm1") == [third]
    assert harness.sim.boots("vm1") == 3
    exits = harness.events("guest.exited", guest="vm1")
    assert [(e["pid"], e["meaning"]) for e in exits] == [(first, "poweroff"), (second, "poweroff")]


def test_operator_commands_name_what_they_refuse(harness: Harness) -> None:
    harness.put("off", guest_toml("off", extra='state = "stopped"'))
    harness.start()
    harness.wait_state("off", "stopped")

    unknown = harness.cli("start", "nosuch")
    file_says_stopped = harness.cli("start", "off")

    assert unknown.returncode == 1
    assert "nosuch" in unknown.stderr and "no guest" in unknown.stderr
    assert file_says_stopped.returncode == 1
    assert 'state = "stopped"' in file_says_stopped.stderr
    assert harness.sim.boots("off") == 0


def test_without_a_daemon_the_commands_say_so(harness: Harness) -> None:
    harness.put("vm1", guest_toml("vm1"))

    never_ran = harness.cli("status")
    start = harness.cli("start", "vm1")

    assert never_ran.returncode == 1 and "no status" in never_ran.stderr
    assert start.returncode == 1
    assert "no bhyve-reconciler daemon is running" in start.stderr
    assert "Traceback" not in start.stderr

    daemon = harness.start()
    harness.wait_running("vm1")
    assert harness.stop_daemon(daemon) == 0

    last = harness.cli("status")
    stop = harness.cli("stop", "vm1")

    assert last.returncode == 0
    assert "no daemon is running" in last.stdout
    assert "vm1" in last.stdout
    assert stop.returncode == 1
    assert "no bhyve-reconciler daemon is running" in stop.stderr
    assert "Traceback" not in stop.stderr


def test_console_runs_cu_on_the_nmdm_b_side(harness: Harness) -> None:
    """On FreeBSD (the driver with the tools on PATH): cu on /dev/nmdm-NAME.1B. The simulated
    host's console, under its root, is tests/console's."""
    harness.put("vm1", guest_toml("vm1"))
    bin_dir = harness.tmp / "bin"
    bin_dir.mkdir()
    cu = bin_dir / "cu"
    cu.write_text('#!/bin/sh\nprintf "%s\\n" "$@"\nexit 7\n')
    cu.chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}")
    config = str(harness.config)
    argv = [sys.executable, "-m", "reconciler", "--config", config, "--host", "freebsd"]

    console = subprocess.run([*argv, "console", "vm1"], capture_output=True, text=True, env=env)
    unknown = subprocess.run([*argv, "console", "nosuch"], capture_output=True, text=True, env=env)

    # cu replaced the CLI: its argv and its exit status are what the operator gets.
    assert (console.returncode, console.stdout.splitlines()) == (7, ["-l", "/dev/nmdm-vm1.1B"])
    assert unknown.returncode == 1 and "nosuch" in unknown.stderr
