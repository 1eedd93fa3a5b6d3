"""Cloud images with the real daemon on the simulated host: a guest whose image is missing waits
(no backoff) and boots once it appears; its disk is never copied again, across passes and
restarts; a crashed copy's temporary is swept; growth and a changed seed land before the next
boot, an on_change restart or a reboot."""

from __future__ import annotations

import os
import signal

import yaml
from daemon_harness import Harness, wait_for

MiB = 1 << 20
IMAGE = "/vm/images/cloud.raw"
# `ssh-keygen -t ed25519`, then a second key (another 32 bytes) for the edit.
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKfrO3VyF2A4zpjVSimaQkQGAE55/JuUQjuTFHl63mYS admin@x"
OTHER = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcH ops@x"


def cloud_guest(name: str, *, size: str = "64M", extra: str = "", cloud: str = "") -> str:
    text = f'name = "{name}"\nmemory = "256M"\n{extra}\n'
    text += f'[[disk]]\npath = "/vm/{name}/disk0.img"\nsource = "{IMAGE}"\nsize = "{size}"\n'
    return text + cloud


def write_image(harness: Harness, size: int = 16 * MiB) -> None:
    where = harness.sim.path(IMAGE)
    where.parent.mkdir(parents=True, exist_ok=True)
    tmp = where.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        f.truncate(size)
        f.write(b"\0" * 510 + b"\x55\xaa")  # a boot sector: no install mode
        f.seek(size - MiB)
        f.write(os.urandom(MiB))
    tmp.rename(where)


def host_errors(harness: Harness) -> tuple[str, ...]:
    status = harness.status()
    return status.host_errors if status is not None else ()


def test_a_missing_image_waits_without_backoff_and_boots_once_it_appears(
    harness: Harness,
) -> None:
    harness.put("web1", cloud_guest("web1"))
    daemon = harness.start()
    waits = f"guest web1 waits: the image {IMAGE} does not exist (yet)"
    wait_for(lambda: waits in host_errors(harness), "the wait to show in status")
    assert harness.sim.boots("web1") == 0
    assert not harness.sim.path("/vm/web1/disk0.img").exists()
    status = harness.status()  # the guest has its row, saying why it waits
    assert status is not None
    row = next(g for g in status.guests if g.name == "web1")
    assert (row.state, row.last_error) == ("waiting", f"the image {IMAGE} does not exist (yet)")

    write_image(harness)
    daemon.send_signal(signal.SIGHUP)  # a pass: an image appearing is no conf.d event

    harness.wait_running("web1")
    assert harness.sim.boots("web1") == 1
    assert harness.events("guest.restart_scheduled") == []
    assert harness.events("guest.boot_failed") == []
    copied = harness.events("disk.copied", guest="web1")
    assert [e["disk"] for e in copied] == ["/vm/web1/disk0.img"]
    assert all(waits not in e for e in host_errors(harness))


def test_a_disk_is_copied_once_across_passes_and_a_daemon_restart(harness: Harness) -> None:
    write_image(harness)
    stale = harness.sim.path("/vm/web1/.disk0.img.k3x9q2.partial")  # a crashed copy's
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"half a disk")
    harness.put("web1", cloud_guest("web1"))
    first = harness.start()
    harness.wait_running("web1")
    disk = harness.sim.path("/vm/web1/disk0.img")
    before = disk.stat()
    assert not stale.exists()
    assert [e["temporary"] for e in harness.events("disk.copy_swept")] == [str(stale)]

    passes = harness.passes()
    first.send_signal(signal.SIGHUP)
    wait_for(lambda: harness.passes() > passes, "another pass")
    assert harness.stop_daemon(first) == 0
    harness.start()
    harness.wait_running("web1")

    after = disk.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert len(harness.events("disk.copy_started")) == 1
    assert sorted(p.name for p in disk.parent.iterdir()) == ["disk0.img"]


def test_an_on_change_restart_grows_the_disk_before_the_next_boot(harness: Harness) -> None:
    write_image(harness)
    harness.put("web1", cloud_guest("web1", size="64M"))
    harness.start()
    first = harness.wait_running("web1")
    disk = harness.sim.path("/vm/web1/disk0.img")
    assert disk.stat().st_size == 64 * MiB

    harness.put("web1", cloud_guest("web1", size="128M"))

    harness.wait_running("web1", not_pid=first)
    assert disk.stat().st_size == 128 * MiB
    events = [
        e
        for e in harness.events()
        if e.get("event") == "guest.booting" or e.get("action", "").startswith("grow ")
    ]
    assert [e.get("action", e["event"]) for e in events] == [
        "guest.booting",
        "grow /vm/web1/disk0.img 64M → 128M",
        "guest.booting",
    ]


def seed_id(harness: Harness) -> str:
    seed_dir = harness.state_dir / "guests/web1/seed"
    return str(yaml.safe_load((seed_dir / "meta-data").read_text())["instance-id"])


def test_a_next_boot_edit_of_the_seed_lands_at_the_guests_reboot(harness: Harness) -> None:
    write_image(harness)
    cloud = f'[cloud_init]\nssh_authorized_keys = ["{KEY}"]\n'
    harness.put("web1", cloud_guest("web1", extra='on_change = "next-boot"', cloud=cloud))
    harness.start()
    first = harness.wait_running("web1")
    seed = harness.state_dir / "guests/web1/seed.iso"
    built, first_id = seed.stat(), seed_id(harness)
    bhyve = [a for a in harness.commands_for("web1") if a[0] == "bhyve"]
    assert f"28:0,ahci-cd,{seed}" in bhyve[0]

    edited = cloud.replace(KEY, OTHER)
    harness.put("web1", cloud_guest("web1", extra='on_change = "next-boot"', cloud=edited))
    passes = harness.passes()
    wait_for(lambda: harness.passes() > passes, "the pass of the edit")
    assert harness.wait_running("web1") == first  # next-boot: it keeps running
    assert seed.stat().st_mtime_ns == built.st_mtime_ns  # nothing under a running guest

    harness.sim.guest_do("web1", "reboot")

    harness.wait_running("web1", not_pid=first)
    assert seed_id(harness) != first_id
    user_data = (harness.state_dir / "guests/web1/seed/user-data").read_text()
    assert OTHER in user_data and KEY not in user_data
    events = [
        str(e.get("action", e["event"]))
        for e in harness.events()
        if e.get("event") == "guest.booting" or "seed" in e.get("action", "")
    ]
    assert [e.split(" (")[0] for e in events] == [
        f"build cloud-init seed {seed}",
        "guest.booting",
        f"rebuild cloud-init seed {seed}",
        "guest.booting",
    ]
    assert harness.events("guest.restart_scheduled") == []


def test_status_shows_why_a_guest_waits_for_its_disk(harness: Harness) -> None:
    write_image(harness)
    harness.put("web1", cloud_guest("web1", size="8M"))  # smaller than its image
    harness.start()
    why = "/vm/web1/disk0.img: size 8M is smaller than the image /vm/images/cloud.raw (16M)"
    wait_for(lambda: any(why in e for e in host_errors(harness)), "the reason in status")
    assert harness.sim.boots("web1") == 0
    assert harness.events("guest.restart_scheduled") == []


def test_a_restarted_daemon_adopts_a_guest_whose_user_data_is_a_file(harness: Harness) -> None:
    write_image(harness)
    user_data = harness.sim.path("/usr/local/etc/cloud/web.yaml")
    user_data.parent.mkdir(parents=True)
    user_data.write_text("#cloud-config\npackages: [nginx]\n")
    cloud = f'[cloud_init]\nssh_authorized_keys = ["{KEY}"]\n'
    cloud += 'user_data = "/usr/local/etc/cloud/web.yaml"\n'
    harness.put("web1", cloud_guest("web1", cloud=cloud))
    first = harness.start()
    pid = harness.wait_running("web1")
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)

    harness.start()

    assert harness.wait_running("web1") == pid
    assert [(e["guest"], e["pid"]) for e in harness.events("guest.adopted")] == [("web1", pid)]
    assert harness.events("guest.spec_changed") == []
    assert harness.sim.boots("web1") == 1
