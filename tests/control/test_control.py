"""Operator commands over the control socket, the single-daemon lock, and the status file."""

from __future__ import annotations

import json
import os
import socket
import stat
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from reconciler.control import ControlServer, DaemonLock, Request, send_command
from reconciler.errors import DaemonError, StateError
from reconciler.status import (
    DaemonStatus,
    GuestStatus,
    StatusWriter,
    read_status,
)
from reconciler.statusview import render_table


def test_command_reaches_the_loop_and_the_answer_comes_back(tmp_path: Path) -> None:
    seen: list[Request] = []

    def submit(request: Request) -> None:
        seen.append(request)
        request.reply(True, f"{request.command} {request.guest}: done")

    server = ControlServer(tmp_path, submit)
    server.start()
    try:
        assert stat.S_IMODE(os.stat(tmp_path / "control.sock").st_mode) == 0o600
        ok, message = send_command(tmp_path, "start", "web")
    finally:
        server.stop()
    assert ok and message == "start web: done"
    assert [(r.command, r.guest) for r in seen] == [("start", "web")]


def test_answer_can_come_from_another_thread(tmp_path: Path) -> None:
    def submit(request: Request) -> None:
        threading.Timer(0.05, request.reply, args=(False, "no such guest")).start()

    server = ControlServer(tmp_path, submit)
    server.start()
    try:
        assert send_command(tmp_path, "stop", "nope") == (False, "no such guest")
    finally:
        server.stop()


def test_stop_wakes_the_server_instead_of_waiting_for_an_accept_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A daemon's exit waits for stop(): the server thread must be woken by it, not find out
    at its next timeout. With socket timeouts disabled, a server that relies on one never
    ends; one that is woken ends before stop() returns."""
    monkeypatch.setattr(socket.socket, "settimeout", lambda self, value: None)
    server = ControlServer(tmp_path, lambda request: request.reply(True, "done"))
    server.start()
    assert send_command(tmp_path, "start", "web") == (True, "done")  # it serves until stopped
    thread = next(t for t in threading.enumerate() if t.name == "control")
    wait_until_idle(thread)  # waiting for the next connection, as a daemon's server mostly is
    server.stop()
    assert not thread.is_alive()
    assert not (tmp_path / "control.sock").exists()


def wait_until_idle(thread: threading.Thread) -> None:
    """Until `thread` has finished with its connection (no frame of `_handle` on its stack)."""
    for _ in range(1000):
        frame = sys._current_frames().get(thread.ident or 0)
        names = []
        while frame is not None:
            names.append(frame.f_code.co_name)
            frame = frame.f_back
        if "_handle" not in names:
            return
        time.sleep(0.001)
    raise AssertionError(f"the control thread never finished its connection: {names}")


def test_no_daemon_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DaemonError, match="no bhyve-reconciler daemon is running"):
        send_command(tmp_path, "start", "web")


def test_second_daemon_on_the_same_run_dir_is_refused(tmp_path: Path) -> None:
    first = DaemonLock(tmp_path)
    first.acquire()
    try:
        with pytest.raises(DaemonError, match=f"pid {os.getpid()}"):
            DaemonLock(tmp_path).acquire()
    finally:
        first.release()
    again = DaemonLock(tmp_path)
    again.acquire()  # released: a new daemon may start
    again.release()


def test_status_round_trips_and_renders(tmp_path: Path) -> None:
    status = DaemonStatus(
        pid=42,
        started_at=1000.0,
        updated_at=1100.0,
        guests=(
            GuestStatus(
                name="web",
                state="running",
                pid=77,
                started_at=1000.0,
                boots=2,
                last_exit=0,
                last_exit_meaning="reboot",
            ),
            GuestStatus(
                name="db",
                state="crash-loop",
                boots=3,
                last_exit=4,
                last_exit_meaning="error",
                next_restart_at=1104.0,
                last_error="bhyve exited 4",
            ),
        ),
        problems=("conf.d/x.toml: cpus: must be at least 1",),
    )
    StatusWriter(tmp_path).write(status)
    assert read_status(tmp_path) == status
    table = render_table(status, now=1100.0).splitlines()
    assert table[0].split() == [
        "NAME",
        "STATE",
        "CPUS",
        "MEMORY",
        "LOADER",
        "CONSOLE/VNC",
        "PID",
        "UPTIME",
        "BOOTS",
        "LAST",
        "EXIT",
        "NEXT",
        "RESTART",
        "ERROR",
    ]
    # Neither row says which spec it runs: CPUS, MEMORY, LOADER and CONSOLE/VNC are "-".
    assert table[1].split()[:10] == ["db", "crash-loop", *["-"] * 6, "3", "4"]
    assert "in 4s" in table[1] and "bhyve exited 4" in table[1]
    assert table[2].split()[:9] == ["web", "running", *["-"] * 4, "77", "1m40s", "2"]
    assert table[3] == "problem: conf.d/x.toml: cpus: must be at least 1"


def test_missing_status_file_reads_as_none(tmp_path: Path) -> None:
    assert read_status(tmp_path) is None


def test_one_writer_reflects_every_change_of_rows_and_header(tmp_path: Path) -> None:
    writer = StatusWriter(tmp_path)
    first = DaemonStatus(
        pid=1,
        started_at=0.0,
        updated_at=1.0,
        passes=1,
        guests=(GuestStatus(name="a", state="starting"),),
    )
    writer.write(first)
    assert read_status(tmp_path) == first
    second = replace(first, passes=2, guests=(GuestStatus(name="a", state="running", pid=9),))
    writer.write(second)
    assert read_status(tmp_path) == second
    third = replace(second, passes=3, updated_at=2.0)  # same rows: only the header moves
    writer.write(third)
    assert read_status(tmp_path) == third


@pytest.mark.parametrize(
    "content", [b"{broken", b"[]", b'{"pid": 1, "guests": {}}', b'{"pid": 1, "guests": [7]}']
)
def test_a_damaged_status_file_is_one_clear_error(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "status.json").write_bytes(content)
    with pytest.raises(StateError) as caught:
        read_status(tmp_path)
    assert str(caught.value).startswith(f"{tmp_path / 'status.json'}: ")
    assert "\n" not in str(caught.value)


def test_fields_a_newer_daemon_wrote_are_ignored(tmp_path: Path) -> None:
    row = {"name": "a", "state": "running", "numa_nodes": 4}  # cpus became a real field
    data = {"pid": 1, "started_at": 0.0, "updated_at": 1.0, "future": 1, "guests": [row]}
    (tmp_path / "status.json").write_text(json.dumps(data))
    status = read_status(tmp_path)
    assert status is not None
    assert status.guests == (GuestStatus(name="a", state="running"),)


def test_a_run_dir_too_deep_for_a_unix_socket_is_one_clear_error(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    server = ControlServer(deep, lambda request: None)
    with pytest.raises(DaemonError) as caught:
        server.start()
    assert str(caught.value) == (
        f"cannot listen on {deep / 'control.sock'}: the path is too long for a UNIX socket "
        f"({len(str(deep / 'control.sock'))} bytes): choose a shorter run_dir (or --sim-dir)"
    )
