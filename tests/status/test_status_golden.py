# ruff: noqa: E501  (golden lines are as wide as the tables)
"""Golden outputs: `status`, `status --wide` and `status NAME` as a person reads them, from one
status with a guest in each state an admin meets (status_fixture.py)."""

from __future__ import annotations

import json

from status_fixture import NOW, ROWS, STATUS

from reconciler.guestview import BootLine, DiskView, GuestView, NicView, guest_json, render_guest
from reconciler.spec import Disk, Graphics, GuestSpec, Install, Nic
from reconciler.status import StatusWriter, read_status
from reconciler.statusview import render_table

NARROW = [
    "NAME    STATE          CPUS  MEMORY  LOADER     CONSOLE/VNC                       PID   UPTIME  BOOTS  LAST EXIT            NEXT RESTART  ERROR",
    "broken  running        1     512M    bhyveload  nmdm-broken.1B                    900   1d01h   1      -                    -             /c/broken.toml: disk[0].path: must not contain a comma: i...",
    "db      crash-loop     1     512M    bhyveload  nmdm-db.1B                        -     -       3      4 (error)            in 8s         bhyve exited with status 4 (error)",
    "lab     powered-off    4     8G      bhyveload  nmdm-lab.1B                       -     -       1      1 (poweroff)         -             -",
    "mail    stopping       2     4G      bhyveload  nmdm-mail.1B                      77    1h00m   1      -                    -             -",
    "old     held (forced)  1     1G      grub       /dev/ttyu1                        -     -       1      1 (forced poweroff)  -             -",
    "web     running        2     2G      uefi       nmdm-web.1B vnc://127.0.0.1:5900  4242  1m40s   2      0 (reboot)           -             -",
    "problem: /c/new.toml: memory: expected a size like 16G or 1024M, got '1024'",
    "problem: /c/web.toml: install.iso: warning: /iso/x.iso does not exist (yet)",
    "host: observe zvols: zfs list: exit status 1: no pools available",
]

WIDE = [
    "NAME    STATE          DESIRED  CPUS  MEMORY  LOADER     CONSOLE         VNC             PID   STARTED               UPTIME  BOOTS  LAST EXIT            LAST STOP        NEXT RESTART  FILE            ERROR",
    "broken  running        running  1     512M    bhyveload  nmdm-broken.1B  -               900   2023-11-13 21:13:20Z  1d01h   1      -                    -                -             /c/broken.toml  /c/broken.toml: disk[0].path: must not contain a comma: it would reach bhyve's option syntax",
    "db      crash-loop     running  1     512M    bhyveload  nmdm-db.1B      -               -     -                     -       3      4 (error)            -                in 8s         /c/db.toml      bhyve exited with status 4 (error)",
    "lab     powered-off    running  4     8G      bhyveload  nmdm-lab.1B     -               -     -                     -       1      1 (poweroff)         -                -             /c/lab.toml     -",
    "mail    stopping       running  2     4G      bhyveload  nmdm-mail.1B    -               77    2023-11-14 21:13:20Z  1h00m   1      -                    -                -             /c/mail.toml    -",
    "old     held (forced)  running  1     1G      grub       /dev/ttyu1      -               -     -                     -       1      1 (forced poweroff)  forced-poweroff  -             /c/old.toml     -",
    "web     running        running  2     2G      uefi       nmdm-web.1B     127.0.0.1:5900  4242  2023-11-14 22:11:40Z  1m40s   2      0 (reboot)           -                -             /c/web.toml     -",
    "problem: /c/new.toml: memory: expected a size like 16G or 1024M, got '1024'",
    "problem: /c/web.toml: install.iso: warning: /iso/x.iso does not exist (yet)",
    "host: observe zvols: zfs list: exit status 1: no pools available",
]

WEB = [
    "web",
    "  spec file:     /c/web.toml",
    "  state:         running; desired: running",
    "  why:           bhyve runs (pid 4242)",
    "  loader:        uefi",
    "  cpus:          2",
    "  memory:        2G",
    "  disks:",
    "    nvme  /vm/web/disk0.img  32G, 1.2G allocated",
    "    virtio-blk  /dev/zvol/tank/web-data  8G, 5M allocated  [nocache]",
    "  nics:",
    "    virtio-net  tap3 (allocated) in bridge0, MAC 58:9c:fc:00:00:01",
    "    e1000  tap7, no bridge, MAC bhyve's own",
    "  install media: /iso/x.iso",
    "  console:       /dev/nmdm-web.1B (bhyve-reconciler console web)",
    "  vnc:           vnc://127.0.0.1:5900",
    "  boots:         2",
    "  pid:           4242",
    "  uptime:        1m40s (since 2023-11-14 22:11:40Z)",
    "  last exits:",
    "    2023-11-14 22:11:39Z  bhyve 0 (reboot)",
    "  backoff:       none",
    "  hold:          none",
    "  last error:    none",
    "  command line:  (started 2023-11-14 22:11:39Z)",
    "    bhyve -c 2 -m 2G -s 2:0,virtio-net,tap3,mac=58:9c:fc:00:00:01 web",
]

DB = [
    "db",
    "  spec file:    /c/db.toml",
    "  file problem: cpus: must be between 1 and 256, got 0",
    "  state:        crash-loop; desired: running",
    "  why:          it exited 4 (error), a failure; the next boot is in 8s (crash backoff after 3 quick failures in a row)",
    "  loader:       bhyveload",
    "  cpus:         1",
    "  memory:       512M",
    "  disks:        ?",
    "  nics:         ?",
    "  console:      /dev/nmdm-db.1B (bhyve-reconciler console db)",
    "  vnc:          none",
    "  boots:        3",
    "  pid:          -",
    "  uptime:       -",
    "  last exits:",
    "    2023-11-14 22:13:16Z  bhyve 4 (error)",
    "    2023-11-14 22:13:00Z  bhyve 4 (error)",
    "    2023-11-14 22:12:50Z  bhyve 4 (error)",
    "  backoff:      next boot in 8s, after 3 failures",
    "  hold:         none",
    "  last error:   bhyve exited with status 4 (error)",
]

WEB_SPEC = GuestSpec(
    name="web",
    source="/c/web.toml",
    cpus=2,
    memory="2G",
    loader="uefi",
    disks=(
        Disk(path="/vm/web/disk0.img", size=32 << 30, emulation="nvme"),
        Disk(zvol="tank/web-data", options=("nocache",)),
    ),
    nics=(Nic(bridge="bridge0", mac="58:9c:fc:00:00:01"), Nic(tap="tap7", emulation="e1000")),
    graphics=Graphics(listen="127.0.0.1:5900"),
    install=Install(iso="/iso/x.iso"),
)
WEB_VIEW = GuestView(
    name="web",
    row=ROWS[0],
    spec=WEB_SPEC,
    file="/c/web.toml",
    disks=(
        DiskView("/vm/web/disk0.img", "nvme", 32 << 30, 1288490189, 32 << 30),
        DiskView("/dev/zvol/tank/web-data", "virtio-blk", 8 << 30, 5 << 20, None, ("nocache",)),
    ),
    nics=(
        NicView("virtio-net", "tap3", "running boot", "bridge0", "58:9c:fc:00:00:01"),
        NicView("e1000", "tap7", "spec", None, None),
    ),
    boot=BootLine(
        None,
        ("bhyve", "-c", "2", "-m", "2G", "-s", "2:0,virtio-net,tap3,mac=58:9c:fc:00:00:01", "web"),
        NOW - 100.4,
    ),
)


def test_status_table() -> None:
    assert render_table(STATUS, NOW).split("\n") == NARROW


def test_status_wide_table() -> None:
    assert render_table(STATUS, NOW, wide=True).split("\n") == WIDE


def test_an_error_is_shown_once_in_its_guest_s_row() -> None:
    """A broken file's error is in its guest's ERROR column, not again as a `problem:` line;
    a problem no row shows (a new file's, a warning) still gets its line."""
    text = render_table(STATUS, NOW)
    assert text.count("disk[0].path") == 1
    assert "problem: /c/new.toml" in text


def test_the_narrow_table_cuts_a_long_error_and_the_wide_one_does_not() -> None:
    broken = next(r for r in ROWS if r.name == "broken")
    assert broken.spec_error is not None
    assert NARROW[1].endswith("...") and broken.spec_error not in NARROW[1]
    assert WIDE[1].endswith(broken.spec_error)


def test_status_of_one_guest() -> None:
    assert render_guest(WEB_VIEW, NOW).split("\n") == WEB


def test_status_of_a_guest_whose_file_is_broken() -> None:
    view = GuestView(
        name="db",
        row=ROWS[1],
        spec=None,
        file="/c/db.toml",
        file_problems=("cpus: must be between 1 and 256, got 0",),
    )
    assert render_guest(view, NOW).split("\n") == DB


def test_status_of_one_guest_as_json_says_the_same() -> None:
    data = json.loads(json.dumps(guest_json(WEB_VIEW, NOW)))
    assert data["status"]["state"] == "running"
    assert data["why"] == "bhyve runs (pid 4242)"
    assert [d["allocated"] for d in data["disks"]] == [1288490189, 5 << 20]
    assert [(n["tap"], n["tap_from"]) for n in data["nics"]] == [
        ("tap3", "running boot"),
        ("tap7", "spec"),
    ]
    assert data["command_line"]["bhyve"][-1] == "web"
    assert data["status"]["recent_exits"] == [
        {"at": NOW - 100.5, "status": 0, "meaning": "reboot", "phase": "bhyve"}
    ]


def test_every_new_row_field_survives_status_json(tmp_path) -> None:  # type: ignore[no-untyped-def]
    StatusWriter(tmp_path).write(STATUS)
    assert read_status(tmp_path) == STATUS
