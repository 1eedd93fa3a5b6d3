"""Which names in conf.d are guest specs, and which events say a file has finished changing."""

from __future__ import annotations

from pathlib import Path

import pytest
from watchdog.events import (
    DirCreatedEvent,
    DirModifiedEvent,
    FileClosedEvent,
    FileClosedNoWriteEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileOpenedEvent,
    FileSystemEvent,
)

from reconciler.guestfile import is_spec_file_name
from reconciler.watch import settled_paths


@pytest.mark.parametrize("name", ["web.toml", "db-1.toml", "a.b.toml", "Guest_2.toml"])
def test_spec_names_count(name: str) -> None:
    assert is_spec_file_name(name)


@pytest.mark.parametrize(
    "name",
    [
        ".web.toml",  # hidden
        ".web.toml.swp",  # vim swap
        ".web.toml.swx",
        "web.toml.swp",
        "web.toml~",  # vim/emacs backup
        "#web.toml#",  # emacs autosave
        ".#web.toml",  # emacs lock
        "4913",  # vim writability probe
        ".ansible_tmpk2j3web.toml",  # config-management temp file before its rename
        "web.toml.tmp",
        "web.toml.orig",
        "web.TOML",
        ".toml",
        "web",
        "sub/web.toml",  # only top-level files are specs
    ],
)
def test_debris_and_other_names_do_not_count(name: str) -> None:
    assert not is_spec_file_name(name)


def test_with_close_events_a_write_counts_only_when_closed() -> None:
    assert settled_paths(FileCreatedEvent("/c/a.toml"), close_events=True) == ()
    assert settled_paths(FileModifiedEvent("/c/a.toml"), close_events=True) == ()
    assert settled_paths(FileClosedEvent("/c/a.toml"), close_events=True) == ("/c/a.toml",)


def test_without_close_events_creates_and_modifies_count() -> None:
    assert settled_paths(FileCreatedEvent("/c/a.toml"), close_events=False) == ("/c/a.toml",)
    assert settled_paths(FileModifiedEvent("/c/a.toml"), close_events=False) == ("/c/a.toml",)


@pytest.mark.parametrize("close_events", [True, False])
def test_moves_report_both_names_and_skip_the_outside_one(close_events: bool) -> None:
    within = FileMovedEvent("/c/.tmp123", "/c/a.toml")
    assert settled_paths(within, close_events=close_events) == ("/c/.tmp123", "/c/a.toml")
    moved_in = FileMovedEvent("", "/c/a.toml")
    assert settled_paths(moved_in, close_events=close_events) == ("/c/a.toml",)
    moved_out = FileMovedEvent("/c/a.toml", "")
    assert settled_paths(moved_out, close_events=close_events) == ("/c/a.toml",)


@pytest.mark.parametrize("close_events", [True, False])
def test_deletes_count(close_events: bool) -> None:
    assert settled_paths(FileDeletedEvent("/c/a.toml"), close_events=close_events) == ("/c/a.toml",)


@pytest.mark.parametrize(
    "event",
    [
        FileOpenedEvent("/c/a.toml"),
        FileClosedNoWriteEvent("/c/a.toml"),  # the daemon reading a spec must not wake itself
        DirCreatedEvent("/c/sub.toml"),
        DirModifiedEvent("/c"),
    ],
)
@pytest.mark.parametrize("close_events", [True, False])
def test_reads_and_directories_never_count(event: FileSystemEvent, close_events: bool) -> None:
    assert settled_paths(event, close_events=close_events) == ()


def test_a_symlink_created_counts_even_with_close_events(tmp_path: Path) -> None:
    target = tmp_path / "available.toml"
    target.write_text("")
    link = tmp_path / "web.toml"
    link.symlink_to(target)
    assert settled_paths(FileCreatedEvent(str(link)), close_events=True) == (str(link),)
