"""The operator's view of a running daemon: `stop` progress, `status NAME`, `logs`, the boot log
kept bounded, and log events that say what changed."""

from __future__ import annotations

import json
import re
import select
import signal
import subprocess
from typing import IO

from daemon_harness import Harness, guest_toml, wait_for

from reconciler.sim.vmm import tell_guest

# The countdowns a poll may see: how many polls land in each phase, and at which second,
# depends on the machine's speed (a loaded one may see the kill's grace run down).
PHASES = re.compile(
    r"vm1: stopping: (ACPI shutdown requested \(power button\); forced power-off in [01]s"
    r"|no ACPI shutdown in time: forced power-off; SIGKILL in [0-5]s)"
)


def test_stop_shows_its_progress_and_says_the_guest_was_forced_off(harness: Harness) -> None:
    harness.put("vm1", guest_toml("vm1"))
    harness.put("vm2", guest_toml("vm2"))
    harness.start()
    harness.wait_running("vm1")
    vm2 = harness.wait_running("vm2")
    harness.sim.set_acpi("vm1", False)

    stop = harness.cli("stop", "vm1")

    assert stop.returncode == 0, stop.stderr
    first, second, *middle, last = stop.stdout.splitlines()
    assert first == "stop: vm1 is stopping"
    assert second == "vm1: stopping: ACPI shutdown requested (power button); forced power-off in 1s"
    assert [line for line in middle if not PHASES.fullmatch(line)] == []
    assert last == "vm1: held (forced power-off: no ACPI shutdown within 1s)"
    assert ["bhyvectl", "--vm=vm1", "--force-poweroff"] in harness.commands_for("vm1")

    # A guest that powers itself off is told apart from one that had to be forced off.
    harness.sim.guest_do("vm2", "poweroff")
    harness.wait_state("vm2", "powered-off")
    rows = {line.split()[0]: line for line in harness.cli("status").stdout.splitlines()[1:]}
    assert rows["vm1"].split()[1:3] == ["held", "(forced)"]
    assert "1 (forced poweroff)" in rows["vm1"]
    assert rows["vm2"].split()[1] == "powered-off"
    assert "1 (poweroff)" in rows["vm2"]
    assert str(vm2) not in rows["vm2"]


def test_stop_no_wait_returns_at_once(harness: Harness) -> None:
    harness.configure(stop_timeout="30s")
    harness.put("vm1", guest_toml("vm1"))
    harness.start()
    harness.wait_running("vm1")
    harness.sim.set_acpi("vm1", False)

    stop = harness.cli("stop", "vm1", "--no-wait")

    assert (stop.returncode, stop.stdout) == (0, "stop: vm1 is stopping\n")
    assert harness.state("vm1") == "stopping"


def test_status_of_one_guest(harness: Harness) -> None:
    harness.put("vm1", guest_toml("vm1", cpus=2, tap="tap0"))
    harness.start()
    pid = harness.wait_running("vm1")
    disk = harness.sim.path("/vm/vm1/disk0.img")
    with open(disk, "r+b") as f:
        f.write(b"\x01" * 8192)  # allocate some of the sparse image

    page = harness.cli("status", "vm1")
    as_json = harness.cli("status", "vm1", "--json")
    commands = harness.cli("commands", "vm1")

    assert page.returncode == 0, page.stderr
    # `  key: value` lines; the nested lines under a key are indented deeper.
    keyed = [line for line in page.stdout.splitlines()[1:] if not line.startswith("    ")]
    fields = dict((k.strip(), v.strip()) for k, v in (line.split(":", 1) for line in keyed))
    assert page.stdout.splitlines()[0] == "vm1"
    assert fields["spec file"] == str(harness.conf_dir / "vm1.toml")
    assert fields["state"] == "running; desired: running"
    assert fields["why"] == f"bhyve runs (pid {pid})"
    assert (fields["cpus"], fields["memory"], fields["loader"]) == ("2", "256M", "bhyveload")
    (disk_line,) = [line.strip() for line in page.stdout.splitlines() if "disk0.img  " in line]
    assert re.fullmatch(r"virtio-blk  /vm/vm1/disk0\.img  1G, [0-9.]+K allocated", disk_line)
    assert "virtio-net  tap0 in bridge0, MAC bhyve's own" in page.stdout
    assert fields["console"] == "/dev/nmdm-vm1.1B (bhyve-reconciler console vm1)"
    # The running boot's command lines: what `commands` says the boot runs.
    lines = page.stdout.splitlines()
    start = lines.index(next(line for line in lines if line.startswith("  command line:")))
    assert [line.strip() for line in lines[start + 1 :]] == commands.stdout.splitlines()

    data = json.loads(as_json.stdout)
    assert data["status"]["pid"] == pid
    assert data["disks"][0]["size"] == 1 << 30
    assert data["disks"][0]["allocated"] >= 8192
    assert data["command_line"]["bhyve"][-1] == "vm1"

    unknown = harness.cli("status", "nosuch")
    assert unknown.returncode == 1 and "no guest named 'nosuch'" in unknown.stderr


def test_logs_prints_what_bhyve_said_and_follows_it(harness: Harness) -> None:
    harness.put("vm1", guest_toml("vm1"))
    harness.start()
    harness.wait_running("vm1")
    # bhyve says something on stderr as the guest reboots (vmexit diagnostics, say).
    assert tell_guest(str(harness.sim.root), "vm1", 0, "vm exit[0]\nrip 0xffffffff")
    harness.wait_boots("vm1", 2)
    wait_for(lambda: harness.cli("logs", "vm1").stdout.count("boot:") == 2, "the second boot")

    last = harness.cli("logs", "vm1", "-n", "3")

    assert last.returncode == 0, last.stderr
    said, ended, began = last.stdout.splitlines()
    assert (said, ended) == ("vm exit[0]", "rip 0xffffffff")
    assert began.startswith("--- ") and began.endswith(" boot: " + " ".join(
        harness.cli("commands", "vm1").stdout.splitlines()[-1].split()
    ))  # fmt: skip

    follow = subprocess.Popen(
        [*harness.base_argv(), "logs", "vm1", "-f", "-n", "1"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert follow.stdout is not None
        # Once the last line is shown, what follows it will be.
        assert readline(follow.stdout) == began + "\n"
        assert tell_guest(str(harness.sim.root), "vm1", 0, "after following")
        assert readline(follow.stdout) == "after following\n"
    finally:
        follow.send_signal(signal.SIGINT)
        assert follow.wait(timeout=10) == 0

    never = harness.cli("logs", "nosuch")
    assert never.returncode == 1 and "never booted" in never.stderr


def readline(stream: IO[str], limit: float = 20.0) -> str:
    """One line, or fail after `limit` seconds rather than hang."""
    ready, _, _ = select.select([stream], [], [], limit)
    assert ready, f"no line after {limit}s"
    return stream.readline()


def test_a_running_guest_s_boot_log_is_cut_before_it_fills_the_disk(harness: Harness) -> None:
    harness.set_timings(boot_log_check="100ms")
    harness.put("vm1", guest_toml("vm1"))
    harness.start()
    harness.wait_running("vm1")
    log = harness.run_dir / "guests" / "vm1" / "boot.log"
    with open(log, "ab") as f:  # as bhyve would, appending
        f.write(b"rdmsr to register 0x64e on vcpu 0\n" * 100_000)  # 3.4 MB

    # The event is logged once the cut is done: boot.log.0 appears before boot.log is truncated.
    wait_for(lambda: harness.events("guest.boot_log_cut", file=str(log)), "boot.log to be cut")

    assert log.with_name("boot.log.0").stat().st_size == 1 << 20
    assert log.stat().st_size < 1 << 20
    assert harness.state("vm1") == "running"


def test_the_log_says_which_keys_an_edit_changed_and_when_a_file_is_valid_again(
    harness: Harness,
) -> None:
    harness.put("vm1", guest_toml("vm1"))
    harness.start()
    harness.wait_running("vm1")

    harness.put("vm1", guest_toml("vm1", cpus=2, extra='restart = "always"'))
    wait_for(lambda: harness.events("spec.changed"), "the edit to be logged")
    harness.put("vm1", "cpus = \n")
    wait_for(lambda: harness.events("spec.invalid"), "the broken file to be logged")
    harness.put("vm1", guest_toml("vm1", cpus=2, extra='restart = "always"'))
    wait_for(lambda: harness.events("spec.valid_again"), "the fix to be logged")

    (changed,) = harness.events("spec.changed")
    assert (changed["guest"], changed["keys"]) == ("vm1", ["cpus", "restart"])
    (fixed,) = harness.events("spec.valid_again")
    assert (fixed["guest"], fixed["file"]) == ("vm1", str(harness.conf_dir / "vm1.toml"))
    # Nothing in the whole log is a field without a value.
    events = harness.events()
    assert events and all(None not in e.values() for e in events), [
        e for e in events if None in e.values()
    ]
