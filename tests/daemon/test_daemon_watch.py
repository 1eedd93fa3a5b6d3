"""conf.d drives the running daemon (issue 5): with a resync interval of an hour, only file
events can explain a boot, a restart or a stop seen here."""

from __future__ import annotations

import os
import time

from daemon_harness import ROOM, Harness, guest_toml, wait_for


def test_a_file_renamed_into_conf_d_boots_its_guest(harness: Harness) -> None:
    harness.start()
    before = harness.passes()
    status = harness.status()
    assert status is not None and status.guests == ()

    harness.put("vm1", guest_toml("vm1", tap="tap0"))

    pid = harness.wait_running("vm1")
    assert harness.bhyve_processes("vm1") == [pid]
    assert harness.passes() > before
    row = harness.guest("vm1")
    assert row is not None and row.file is not None and row.file.endswith("vm1.toml")
    assert "tap0" in harness.sim.interfaces()


def test_an_invalid_edit_leaves_the_guest_running_and_is_reported_until_fixed(
    harness: Harness,
) -> None:
    good = guest_toml("vm1")
    path = harness.put("vm1", good)
    harness.start()
    pid = harness.wait_running("vm1")

    harness.put("vm1", good.replace("cpus = 1", 'cpus = "many"'))

    def reported() -> str | None:
        row = harness.guest("vm1")
        return None if row is None else row.spec_error

    error = wait_for(reported, "vm1's spec error in status")
    assert "cpus" in error
    status = harness.status()
    assert status is not None
    assert any(p.startswith(str(path)) and "cpus" in p for p in status.problems), status.problems
    row = harness.guest("vm1")
    assert row is not None and (row.state, row.pid, row.file) == ("running", pid, str(path))
    assert harness.bhyve_processes("vm1") == [pid]
    assert harness.events("spec.invalid", file=str(path), key="cpus")

    path.write_text(good)  # fixed in place, as an editor saves

    wait_for(lambda: reported() is None, "vm1's spec error to clear")
    status = harness.status()
    assert status is not None and status.problems == ()
    assert harness.wait_running("vm1") == pid
    assert harness.sim.boots("vm1") == 1


def test_an_edit_of_cpus_restarts_the_guest_with_the_new_count(harness: Harness) -> None:
    harness.put("vm1", guest_toml("vm1", cpus=1))
    harness.start()
    first = harness.wait_running("vm1")

    harness.put("vm1", guest_toml("vm1", cpus=2))

    second = harness.wait_running("vm1", not_pid=first)
    bhyves = [argv for argv in harness.commands_for("vm1") if argv[0] == "bhyve"]
    assert [argv[argv.index("-c") + 1] for argv in bhyves] == ["1", "2"]
    assert harness.bhyve_processes("vm1") == [second]
    (exited,) = harness.events("guest.exited", guest="vm1")
    assert (exited["pid"], exited["meaning"]) == (first, "poweroff")  # a graceful stop first
    assert harness.events("guest.forced_poweroff") == []


def test_removal_stops_the_guest_destroys_the_vm_and_its_tap_but_keeps_its_disk(
    harness: Harness,
) -> None:
    harness.put("vm1", guest_toml("vm1", tap="tap0"))
    harness.start()
    pid = harness.wait_running("vm1")
    disk = harness.sim.path("/vm/vm1/disk0.img")
    assert disk.exists()

    harness.remove("vm1")

    wait_for(lambda: harness.guest("vm1") is None, "vm1 to leave the status")
    wait_for(lambda: "tap0" not in harness.sim.interfaces(), "tap0 to be destroyed")
    (exited,) = harness.events("guest.exited", guest="vm1")
    assert (exited["pid"], exited["meaning"]) == (pid, "poweroff")
    assert harness.events("guest.forced_poweroff") == []
    assert harness.events("guest.removed", guest="vm1")
    assert "vm1" not in harness.sim.vms()
    assert ["bhyvectl", "--vm=vm1", "--destroy"] in harness.commands_for("vm1")
    assert harness.bhyve_processes("vm1") == []
    assert disk.exists()
    assert "bridge0" in harness.sim.interfaces()  # the config's bridge, not the guest's


def test_fifty_files_renamed_in_at_once_boot_in_few_passes(harness: Harness) -> None:
    names = [f"g{i:02d}" for i in range(50)]
    staged = harness.tmp / "staged"
    staged.mkdir()
    for name in names:
        (staged / f"{name}.toml").write_text(guest_toml(name))
    harness.start()
    before = (harness.passes(), harness.observations())

    for name in names:  # as a `git pull` or a config-management run leaves them
        os.rename(staged / f"{name}.toml", harness.conf_dir / f"{name}.toml")

    for name in names:
        harness.wait_running(name, timeout=60)
    after = (harness.passes(), harness.observations())
    assert after[0] - before[0] <= 10, (before, after)
    assert after[1] - before[1] <= 10, (before, after)
    assert all(harness.sim.boots(name) == 1 for name in names)


def test_editor_debris_is_ignored(harness: Harness) -> None:
    harness.start()
    before = (harness.passes(), harness.observations())

    for debris in (".x.toml.swp", "x.toml~", "#x.toml#", ".x.toml", "4913"):
        (harness.conf_dir / debris).write_text(guest_toml("x"))
    time.sleep(ROOM)  # 25 times the watcher's debounce: a pass would have run by now

    status = harness.status()
    assert status is not None
    assert (status.passes, harness.observations()) == before
    assert (status.guests, status.problems) == ((), ())
    assert harness.sim.boots("x") == 0
    # The watcher still works: a real spec is picked up.
    harness.put("y", guest_toml("y"))
    harness.wait_running("y")
    status = harness.status()
    assert status is not None
    assert [g.name for g in status.guests] == ["y"]


def test_a_second_daemon_on_the_same_run_dir_refuses_to_start(harness: Harness) -> None:
    first = harness.start()

    second = harness.start(wait=False)
    status = second.wait(timeout=30)

    assert status == 1
    assert "already runs" in harness.logs[-1].read_text()
    assert str(first.pid) in harness.logs[-1].read_text()
    assert first.poll() is None
    daemon_status = harness.status()
    assert daemon_status is not None and daemon_status.pid == first.pid


def test_sigterm_stops_every_guest_gracefully_in_reverse_order_and_exits_0(
    harness: Harness,
) -> None:
    harness.put("first", guest_toml("first", extra="order = 1"))
    harness.put("second", guest_toml("second", extra="order = 2"))
    daemon = harness.start()
    pids = {name: harness.wait_running(name) for name in ("first", "second")}

    status = harness.stop_daemon(daemon)

    assert status == 0
    assert [e["guest"] for e in harness.events("guest.stopping")] == ["second", "first"]
    exited = {e["guest"]: (e["pid"], e["meaning"]) for e in harness.events("guest.exited")}
    assert exited == {name: (pid, "poweroff") for name, pid in pids.items()}
    assert harness.events("guest.forced_poweroff") == []
    assert harness.sim.vms() == frozenset()
    assert harness.bhyve_processes("first") == harness.bhyve_processes("second") == []
    final = harness.status()
    assert final is not None and {g.state for g in final.guests} == {"stopped"}


def test_a_file_broken_before_the_daemon_starts_is_logged_and_shown(harness: Harness) -> None:
    path = harness.put("vm1", guest_toml("vm1", cpus=0))
    harness.start()
    assert harness.events("spec.invalid", file=str(path), key="cpus")
    status = harness.status()
    assert status is not None
    assert any(p.startswith(f"{path}: cpus: ") for p in status.problems)
