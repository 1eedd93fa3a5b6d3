"""The guest model: what boots versus how the reconciler runs it."""

from __future__ import annotations

from dataclasses import replace

from reconciler.spec import Disk, GuestSpec, Lifecycle

BASE = GuestSpec(name="web", source="/c/web.toml", disks=(Disk(path="/vm/web.img"),))


def test_lifecycle_settings_and_the_source_do_not_change_what_boots() -> None:
    edited = replace(
        BASE,
        source="/c/other.toml",
        lifecycle=Lifecycle(
            state="stopped", order=5, restart="never", on_change="next-boot", stop_timeout=9.0
        ),
    )
    assert edited.boot_key == BASE.boot_key
    assert edited != BASE


def test_anything_else_changes_what_boots() -> None:
    for edited in (
        replace(BASE, cpus=2),
        replace(BASE, memory="1G"),
        replace(BASE, disks=(Disk(path="/vm/other.img"),)),
        replace(BASE, console="/dev/nmdm3A"),
    ):
        assert edited.boot_key != BASE.boot_key


def test_the_boot_key_keeps_the_name() -> None:
    assert replace(BASE, name="db").boot_key != BASE.boot_key
    assert BASE.boot_key.lifecycle == Lifecycle() and BASE.boot_key.source == ""
