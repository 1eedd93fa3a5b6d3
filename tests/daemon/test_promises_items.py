"""What a hostile tester found the promises did not survive, each reproduced on the simulated
host with the real daemon and real processes (issue: "Promises that outlive the process")."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator

import pytest
from daemon_harness import Harness, guest_toml, wait_for

from reconciler.host.guests import guest_run_dir


def short(harness: Harness, stop_timeout: str = "1s") -> None:
    harness.configure(stop_timeout=stop_timeout)
    harness.set_timings(crash_backoff="100ms", kill_grace="1s")


@pytest.fixture
def stranger() -> Iterator[subprocess.Popen[bytes]]:
    """An unrelated process whose pid a stale boot record names (pid reuse)."""
    proc = subprocess.Popen(["sleep", "60"], start_new_session=True)
    yield proc
    proc.kill()
    proc.wait()


def test_a_stale_record_naming_another_process_is_neither_adopted_nor_signalled(
    harness: Harness, stranger: subprocess.Popen[bytes]
) -> None:
    short(harness)
    harness.put("vm1", guest_toml("vm1"))
    record = guest_run_dir(harness.run_dir, "vm1")
    record.mkdir(parents=True)
    for name in ("shim.pid", "bhyve.pid"):
        (record / name).write_text(f"{stranger.pid}\n")

    daemon = harness.start()
    pid = harness.wait_running("vm1")

    assert pid != stranger.pid
    assert stranger.poll() is None
    stopped = harness.cli("stop", "vm1")
    assert stopped.returncode == 0, stopped.stderr
    assert stranger.poll() is None  # `stop` signalled the guest, not the stranger
    assert harness.stop_daemon(daemon) == 0
    assert stranger.poll() is None


def test_a_guest_without_a_nic_whose_records_are_gone_gets_no_second_bhyve(
    harness: Harness,
) -> None:
    short(harness)
    harness.put("quiet", guest_toml("quiet"))  # no NIC: no tap held open tells it runs
    daemon = harness.start()
    pid = harness.wait_running("quiet")
    daemon.kill()
    daemon.wait(timeout=30)
    for record in guest_run_dir(harness.run_dir, "quiet").iterdir():
        record.unlink()
    guest_run_dir(harness.run_dir, "quiet").rmdir()

    harness.start()

    status = wait_for(
        lambda: (
            (s := harness.status()) and any("quiet runs outside" in e for e in s.host_errors) and s
        ),
        "the guest to be reported as run outside",
    )
    assert status is not None
    assert harness.bhyve_processes("quiet") == [pid]
    assert "quiet" in harness.sim.vms()
    assert ["bhyvectl", "--vm=quiet", "--destroy"] not in harness.sim.commands()


def test_a_removed_guest_stops_with_its_own_stop_timeout(harness: Harness) -> None:
    short(harness, stop_timeout="1h")  # the daemon's: a stop would wait an hour on it
    harness.put("deaf", guest_toml("deaf", extra='stop_timeout = "1s"'))
    harness.start()
    harness.wait_running("deaf")
    harness.sim.set_acpi("deaf", False)

    harness.remove("deaf")

    wait_for(lambda: harness.guest("deaf") is None, "the removed guest to be stopped", 20)
    forced = harness.events("guest.forced_poweroff", guest="deaf")
    assert [event["after"] for event in forced] == [1.0]


def test_a_nested_or_huge_file_at_start_is_reported_and_supervision_goes_on(
    harness: Harness,
) -> None:
    short(harness)
    harness.put("vm1", guest_toml("vm1"))
    harness.put("deep", 'name = "deep"\na = ' + "[" * 5000 + "]" * 5000 + "\n")
    harness.put("dotted", ".".join(["x"] * 20000) + " = 1\n")

    daemon = harness.start()
    harness.wait_running("vm1")

    status = harness.status()
    assert status is not None
    problems = "\n".join(status.problems)
    assert "deep.toml" in problems and "dotted.toml" in problems
    assert daemon.poll() is None
    assert "Traceback" not in harness.log_text()


def test_a_loose_conf_dir_freezes_what_the_files_say_until_it_is_fixed(
    harness: Harness,
) -> None:
    short(harness)
    harness.put("vm1", guest_toml("vm1"))
    harness.start()
    pid = harness.wait_running("vm1")

    os.chmod(harness.conf_dir, 0o777)
    harness.remove("vm1")  # anyone could have done this now

    wait_for(
        lambda: (s := harness.status()) and any("the directory mode 0777" in p for p in s.problems),
        "the loose conf_dir to be reported",
    )
    assert harness.bhyve_processes("vm1") == [pid]
    assert harness.state("vm1") == "running"

    os.chmod(harness.conf_dir, 0o755)
    harness.put("other", guest_toml("other"))  # an event: the next pass sees it fixed
    wait_for(lambda: harness.guest("vm1") is None, "vm1 to stop once conf_dir is trusted")


def test_a_symlinked_spec_owned_by_another_user_is_refused(harness: Harness) -> None:
    short(harness)
    target = harness.tmp / "elsewhere" / "evil.toml"
    target.parent.mkdir(mode=0o755)
    target.write_text(guest_toml("evil"))
    target.chmod(0o644)
    link = harness.conf_dir / "evil.toml"
    link.symlink_to(target)
    os.lchown(link, 1000, 1000)
    harness.put("vm1", guest_toml("vm1"))

    harness.start()
    harness.wait_running("vm1")

    status = harness.status()
    assert status is not None
    assert any("evil.toml" in p and "symlink is owned by uid 1000" in p for p in status.problems)
    assert harness.guest("evil") is None
    assert harness.sim.boots("evil") == 0


def test_an_edit_to_a_disk_path_boots_on_the_new_disk_without_a_failed_boot(
    harness: Harness,
) -> None:
    short(harness)
    harness.put("vm1", guest_toml("vm1"))
    harness.start()
    first = harness.wait_running("vm1")

    harness.put("vm1", guest_toml("vm1").replace("/disk0.img", "/disk1.img"))

    harness.wait_running("vm1", not_pid=first)
    assert harness.sim.path("/vm/vm1/disk1.img").exists()
    assert not harness.events("guest.boot_failed", guest="vm1")
    assert not harness.events("guest.restart_scheduled", guest="vm1")
    row = harness.guest("vm1")
    assert row is not None and row.last_error is None


def test_a_full_state_dir_neither_crashes_the_daemon_nor_leaks_a_tap_per_restart(
    harness: Harness,
) -> None:
    short(harness)
    state = harness.state_dir
    state.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(state)], check=True)
    try:
        fd = os.open(state / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            while os.write(fd, b"\0" * 4096):
                pass
        except OSError:
            pass  # ENOSPC: the state_dir is full
        finally:
            os.close(fd)
        harness.put("net1", guest_toml("net1", tap="tap0"))
        for _ in range(3):  # daemon(8) -r restarts a daemon that dies
            daemon = harness.start()
            status = wait_for(
                lambda: (
                    (s := harness.status())
                    and any("cannot write the ledger" in e for e in s.host_errors)
                    and s
                ),
                "the full state_dir to be reported",
            )
            assert status is not None
            assert daemon.poll() is None
            daemon.send_signal(signal.SIGTERM)
            assert daemon.wait(timeout=30) == 0
        # Nothing it could not record was created: no tap, once or per restart.
        assert "tap0" not in harness.sim.interfaces()
        assert harness.sim.boots("net1") == 0
    finally:
        subprocess.run(["umount", "-l", str(state)], check=True)


def test_status_of_a_damaged_status_file_is_one_line(harness: Harness) -> None:
    harness.run_dir.mkdir(parents=True, exist_ok=True)
    (harness.run_dir / "status.json").write_text('{"pid": 1, "guests": {}}')

    shown = harness.cli("status")

    assert shown.returncode == 1
    assert "Traceback" not in shown.stderr
    lines = shown.stderr.strip().splitlines()
    assert len(lines) == 1 and "status.json" in lines[0] and "damaged" in lines[0]


def test_a_corrupt_ledger_stops_run_and_plan_with_one_line(harness: Harness) -> None:
    harness.state_dir.mkdir(parents=True, exist_ok=True)
    (harness.state_dir / "ledger.json").write_text('{"version": 1, "interfaces": []}')
    harness.put("vm1", guest_toml("vm1"))

    ran = subprocess.run(
        [*harness.base_argv(), "run", "--log-format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    planned = harness.cli("plan")

    for proc in (ran, planned):
        assert proc.returncode == 1
        assert "Traceback" not in proc.stderr
        line = proc.stderr.strip().splitlines()[-1]
        assert "ledger.json" in line and "to recover" in line
    assert harness.sim.boots("vm1") == 0


def test_an_explicit_tap_that_is_another_guests_allocated_tap_is_refused(
    harness: Harness,
) -> None:
    short(harness)
    harness.put("first", guest_toml("first") + '\n[[nic]]\nbridge = "bridge0"\n')
    harness.start()
    harness.wait_running("first")
    assert harness.sim.interfaces()["tap0"].opened_by == harness.sim.bhyve_pid("first")

    harness.put("second", guest_toml("second", tap="tap0"))
    wait_for(
        lambda: (s := harness.status()) and any("second.toml" in p for p in s.problems),
        "the second file to be refused",
    )
    checked = harness.cli("validate")

    assert checked.returncode == 1
    assert "tap0" in checked.stdout and "first" in checked.stdout
    assert harness.guest("second") is None
    assert harness.sim.boots("second") == 0
    assert harness.sim.interfaces()["tap0"].opened_by == harness.sim.bhyve_pid("first")


def test_plan_shows_an_operator_hold_and_does_not_count_it(harness: Harness) -> None:
    short(harness)
    harness.put("vm1", guest_toml("vm1"))
    daemon = harness.start()
    harness.wait_running("vm1")
    assert harness.cli("stop", "vm1").returncode == 0
    daemon.kill()
    daemon.wait(timeout=30)

    planned = harness.cli("plan")

    assert planned.returncode == 0, planned.stdout + planned.stderr
    assert "+ start guest vm1" not in planned.stdout
    assert "= vm1 held by stop" in planned.stdout


def test_a_disk_that_cannot_be_created_leaves_no_image_behind(harness: Harness) -> None:
    harness.put("big", guest_toml("big"))

    def small_files() -> None:  # as a full or size-limited file system answers: EFBIG
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))

    applied = subprocess.run(
        [*harness.base_argv(), "apply"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        preexec_fn=small_files,
    )

    assert applied.returncode == 1
    image = harness.sim.path("/vm/big/disk0.img")
    assert not image.exists()
    assert [p.name for p in image.parent.iterdir()] == []
    assert "disk0.img" in harness.cli("plan").stdout  # still to be created, not taken as done
