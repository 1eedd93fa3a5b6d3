"""The promises outlive the process: a restart at any moment changes only what a file asks for.

For each way a daemon goes away — SIGKILL (a crash, daemon(8)'s restart), SIGUSR1 (detach for
an upgrade), SIGTERM while the next one starts up — and each thing done to a guest's file while
no daemon ran — broken, refused (a duplicate claims its name), loosened (group-writable), edited,
removed, its boot records gone — the next daemon does what the file says: broken, refused and
loosened files leave their guest untouched; an edit follows `on_change`; a removal stops the
guest gracefully; a guest without records is not booted twice. No disk is ever deleted.
"""

from __future__ import annotations

import os
import shutil
import signal

import pytest
from cli_runner import Forked
from daemon_harness import Harness, guest_toml, wait_for

KINDS = ("broken", "refused", "loosened", "edited", "removed", "records")


def configure(harness: Harness) -> None:
    """The harness's config with short timings: nothing here waits on a backoff."""
    harness.set_timings(crash_backoff="100ms", kill_grace="1s")


def boot_all(harness: Harness, names: list[str]) -> tuple[Forked, dict[str, int]]:
    configure(harness)
    for name in names:
        harness.put(name, guest_toml(name))
    daemon = harness.start()
    return daemon, {name: harness.wait_running(name) for name in names}


def change_files(harness: Harness, prefix: str) -> None:
    """What a person (or a git pull) does to each guest's file while no daemon runs."""
    guest = {kind: f"{prefix}-{kind}" for kind in KINDS}
    harness.put(guest["broken"], f'name = "{guest["broken"]}"\n[[disk]\n')
    # An older duplicate with another disk: were it to win, the next boot would use that disk.
    copy = harness.put(
        f"{guest['refused']}-copy",
        guest_toml(guest["refused"]).replace("/disk0.img", "/other.img"),
    )
    older = (harness.conf_dir / f"{guest['refused']}.toml").stat().st_mtime - 100
    os.utime(copy, (older, older))
    os.chmod(harness.conf_dir / f"{guest['loosened']}.toml", 0o666)
    harness.put(guest["edited"], guest_toml(guest["edited"], cpus=2))
    harness.remove(guest["removed"])
    shutil.rmtree(harness.run_dir / "guests" / guest["records"])


def names_for(prefix: str) -> list[str]:
    return [f"{prefix}-{kind}" for kind in KINDS]


def bhyve_argv(harness: Harness, name: str) -> list[str]:
    return [argv for argv in harness.commands_for(name) if argv[0] == "bhyve"][-1]


def assert_followed_the_files(harness: Harness, prefix: str, before: dict[str, int]) -> None:
    g = {kind: f"{prefix}-{kind}" for kind in KINDS}
    # The edit restarts the guest with its new CPU count; the removal stops it gracefully.
    harness.wait_running(g["edited"], not_pid=before[g["edited"]])
    assert bhyve_argv(harness, g["edited"])[1:3] == ["-c", "2"]
    wait_for(lambda: harness.guest(g["removed"]) is None, f"{g['removed']} to be stopped")
    assert harness.bhyve_processes(g["removed"]) == []
    stops = harness.events("guest.stopping", guest=g["removed"])
    assert stops and stops[-1]["phase"] == "acpi"
    assert not harness.events("guest.forced_poweroff", guest=g["removed"])
    # Broken, refused and loosened files change nothing: the same bhyve still runs.
    for kind in ("broken", "refused", "loosened"):
        assert harness.bhyve_processes(g[kind]) == [before[g[kind]]], kind
        row = harness.guest(g[kind])
        assert row is not None and row.state == "running", (kind, row)
    status = harness.status()
    assert status is not None
    assert any(f"`{g['refused']}` is already claimed" in p for p in status.problems)
    assert not harness.sim.path(f"/vm/{g['refused']}/other.img").exists()
    # No records: its bhyve is not ours to adopt, and never gets a second one.
    assert harness.bhyve_processes(g["records"]) == [before[g["records"]]]
    assert g["records"] in harness.sim.vms()
    assert any(f"guest {g['records']} runs outside" in e for e in status.host_errors)
    assert ["bhyvectl", f"--vm={g['records']}", "--destroy"] not in harness.sim.commands()
    for name in names_for(prefix):
        assert harness.sim.path(f"/vm/{name}/disk0.img").exists(), name


@pytest.mark.parametrize("how", ["SIGKILL", "SIGUSR1"])
def test_a_daemon_that_went_away_is_followed_by_one_that_does_what_the_files_say(
    harness: Harness, how: str
) -> None:
    daemon, before = boot_all(harness, names_for("k"))
    if how == "SIGKILL":
        daemon.kill()
    else:
        daemon.send_signal(signal.SIGUSR1)
    daemon.wait(timeout=30)
    for name in names_for("k"):
        assert harness.bhyve_processes(name) == [before[name]], f"{how} stopped {name}"
    change_files(harness, "k")

    harness.start()

    assert_followed_the_files(harness, "k", before)


def test_sigterm_during_start_up_stops_every_guest_and_the_next_daemon_follows_the_files(
    harness: Harness,
) -> None:
    daemon, before = boot_all(harness, names_for("t"))
    daemon.kill()
    daemon.wait(timeout=30)
    change_files(harness, "t")

    starting = harness.start(wait=False)
    wait_for(lambda: harness.events("daemon.started", pid=starting.pid), "the daemon to start")
    starting.send_signal(signal.SIGTERM)  # before its first pass is done

    assert starting.wait(timeout=60) == 0
    adopted = [n for n in names_for("t") if n != "t-records"]
    for name in adopted:
        assert harness.bhyve_processes(name) == [], f"{name} left running"
    for name in names_for("t"):
        assert harness.sim.path(f"/vm/{name}/disk0.img").exists(), name

    harness.start()

    # Each guest boots again on what its file says: the accepted spec where the file is
    # broken, refused or loosened; the edit; not the removed one.
    for kind in ("broken", "refused", "loosened"):
        harness.wait_running(f"t-{kind}")
    harness.wait_running("t-edited")
    assert bhyve_argv(harness, "t-edited")[1:3] == ["-c", "2"]
    assert harness.guest("t-removed") is None
    assert harness.bhyve_processes("t-records") == [before["t-records"]]
    refused = bhyve_argv(harness, "t-refused")
    assert any("/vm/t-refused/disk0.img" in arg for arg in refused), refused
