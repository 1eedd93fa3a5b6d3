"""One daemon's status with a guest in each state an admin meets, at a fixed clock value."""

from __future__ import annotations

from reconciler.status import DaemonStatus, ExitEntry, GuestStatus

NOW = 1_700_000_000.0  # 2023-11-14 22:13:20Z

ROWS = (
    GuestStatus(
        name="web", state="running", pid=4242, started_at=NOW - 100, boots=2, last_exit=0,
        last_exit_meaning="reboot", file="/c/web.toml", cpus=2, memory="2G", loader="uefi",
        console="/dev/nmdm-web.1A", vnc="127.0.0.1:5900",
        recent_exits=(ExitEntry(NOW - 100.5, 0, "reboot"),),
    ),
    GuestStatus(
        name="db", state="crash-loop", boots=3, last_exit=4, last_exit_meaning="error",
        next_restart_at=NOW + 8, last_error="bhyve exited with status 4 (error)",
        file="/c/db.toml", cpus=1, memory="512M", loader="bhyveload",
        console="/dev/nmdm-db.1A", restart_streak=3,
        recent_exits=(
            ExitEntry(NOW - 30, 4, "error"),
            ExitEntry(NOW - 20, 4, "error"),
            ExitEntry(NOW - 4, 4, "error"),
        ),
    ),
    GuestStatus(
        name="old", state="held", boots=1, last_exit=1, last_exit_meaning="poweroff",
        file="/c/old.toml", cpus=1, memory="1G", loader="grub", console="/dev/ttyu1",
        last_stop="forced-poweroff",
    ),
    GuestStatus(
        name="lab", state="powered-off", boots=1, last_exit=1, last_exit_meaning="poweroff",
        file="/c/lab.toml", cpus=4, memory="8G", loader="bhyveload",
        console="/dev/nmdm-lab.1A",
    ),
    GuestStatus(
        name="mail", state="stopping", pid=77, started_at=NOW - 3600, boots=1,
        file="/c/mail.toml", cpus=2, memory="4G", loader="bhyveload",
        console="/dev/nmdm-mail.1A", stop_phase="acpi", stop_deadline=NOW + 110,
        stop_timeout=120.0,
    ),
    GuestStatus(
        name="broken", state="running", pid=900, started_at=NOW - 90000, boots=1,
        file="/c/broken.toml", cpus=1, memory="512M", loader="bhyveload",
        console="/dev/nmdm-broken.1A",
        spec_error="/c/broken.toml: disk[0].path: must not contain a comma: it would reach "
        "bhyve's option syntax",
    ),
)  # fmt: skip

STATUS = DaemonStatus(
    pid=1,
    started_at=NOW - 100000,
    updated_at=NOW,
    passes=12,
    guests=ROWS,
    problems=(
        "/c/broken.toml: disk[0].path: must not contain a comma: it would reach bhyve's option "
        "syntax",
        "/c/new.toml: memory: expected a size like 16G or 1024M, got '1024'",
        "/c/web.toml: install.iso: warning: /iso/x.iso does not exist (yet)",
    ),
    host_errors=("observe zvols: zfs list: exit status 1: no pools available",),
)
