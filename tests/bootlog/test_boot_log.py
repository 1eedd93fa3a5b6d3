"""A guest's boot.log stays bounded while bhyve writes to it, and reads back in order."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from reconciler.host.bootlog import (
    BOOT_LOG,
    CMDLINE,
    BootCommand,
    BootLogKeeper,
    follow,
    note_boot,
    read_boot_command,
    rotate_if_large,
    rotated,
    tail,
)

LIMIT = 64 * 1024


def test_a_log_under_the_limit_is_left_alone(tmp_path: Path) -> None:
    log = tmp_path / BOOT_LOG
    log.write_bytes(b"x" * LIMIT)
    assert rotate_if_large(log, LIMIT) is False
    assert log.stat().st_size == LIMIT and not rotated(log).exists()
    assert rotate_if_large(tmp_path / "missing.log", LIMIT) is False


def test_a_cut_keeps_the_newest_limit_bytes_and_empties_the_log(tmp_path: Path) -> None:
    log = tmp_path / BOOT_LOG
    lines = [f"line {i}\n".encode() for i in range(20000)]
    log.write_bytes(b"".join(lines))
    assert rotate_if_large(log, LIMIT) is True
    kept = rotated(log).read_bytes()
    assert len(kept) == LIMIT
    assert b"".join(lines).endswith(kept)
    assert log.stat().st_size == 0


def test_a_writer_that_never_stops_cannot_grow_the_log_past_what_it_writes_between_looks(
    tmp_path: Path,
) -> None:
    """bhyve holds boot.log open with O_APPEND (the shim's redirection): after a cut it goes
    on at the start of the file, so the file neither keeps its size nor becomes sparse."""
    log = tmp_path / BOOT_LOG
    # As the shim's output: opened for append by the parent, inherited by the writer.
    with open(log, "ab") as out:
        writer = subprocess.Popen(
            ["/bin/sh", "-c", "while :; do echo 'rdmsr to register 0x64e on vcpu 0'; done"],
            stdout=out,
        )
    try:
        keeper = BootLogKeeper(every=0.0, limit=LIMIT)
        cuts = 0
        deadline = time.monotonic() + 30
        while cuts < 3 and time.monotonic() < deadline:
            if log.stat().st_size > LIMIT:
                cuts += len(keeper.tick(time.monotonic(), lambda: [log]))
        assert cuts == 3
        assert writer.poll() is None  # the writer never noticed
        # After a cut the writer goes on at offset 0: no hole (zeros) where the old data was.
        with open(log, "rb") as f:
            assert b"\0" not in f.read(64)
        assert len(rotated(log).read_bytes()) == LIMIT
    finally:
        writer.kill()
        writer.wait()


def test_the_keeper_looks_only_when_due(tmp_path: Path) -> None:
    log = tmp_path / BOOT_LOG
    looked: list[float] = []

    def logs() -> list[Path]:
        looked.append(now)
        return [log]

    keeper = BootLogKeeper(every=10.0, limit=LIMIT)
    for now in (100.0, 101.0, 109.9, 110.0, 115.0, 120.5):
        keeper.tick(now, logs)
    assert looked == [100.0, 110.0, 120.5]


def test_a_failed_cut_is_reported_and_the_others_go_on(tmp_path: Path) -> None:
    bad = tmp_path / "bad" / BOOT_LOG
    bad.parent.mkdir()
    bad.write_bytes(b"x" * (LIMIT + 1))
    good = tmp_path / BOOT_LOG
    good.write_bytes(b"y" * (LIMIT + 1))
    bad.parent.chmod(0o500)  # boot.log.0 cannot be written there
    errors: list[Path] = []
    try:
        keeper = BootLogKeeper(every=1.0, limit=LIMIT, on_error=lambda p, e: errors.append(p))
        cut = keeper.tick(0.0, lambda: [bad, good])
    finally:
        bad.parent.chmod(0o700)
    if os.geteuid() != 0:  # root writes anyway
        assert errors == [bad]
    assert good in cut


def test_tail_reaches_into_the_rotated_file(tmp_path: Path) -> None:
    log = tmp_path / BOOT_LOG
    rotated(log).write_bytes(b"a\nb\nc\n")
    log.write_bytes(b"d\ne\n")
    assert tail(log, 1) == [b"e\n"]
    assert tail(log, 4) == [b"b\n", b"c\n", b"d\n", b"e\n"]
    assert tail(log, 100) == [b"a\n", b"b\n", b"c\n", b"d\n", b"e\n"]
    assert tail(log, 0) == []
    assert tail(tmp_path / "none.log", 5) == []


def test_tail_up_to_an_offset_leaves_out_what_came_after(tmp_path: Path) -> None:
    """`logs -f` shows the tail up to where it starts following: nothing twice, nothing lost."""
    log = tmp_path / BOOT_LOG
    log.write_bytes(b"a\nb\n")
    end = log.stat().st_size
    with log.open("ab") as f:
        f.write(b"c\n")
    assert tail(log, 5, end=end) == [b"a\n", b"b\n"]
    assert next(follow(log, offset=end, sleep=lambda _: None)) == b"c\n"


def test_tail_of_a_large_log_reads_only_its_end(tmp_path: Path) -> None:
    log = tmp_path / BOOT_LOG
    log.write_bytes(b"".join(f"{i}\n".encode() for i in range(200000)))
    assert tail(log, 3) == [b"199997\n", b"199998\n", b"199999\n"]


def test_follow_starts_at_the_end_and_starts_over_after_a_cut(tmp_path: Path) -> None:
    log = tmp_path / BOOT_LOG
    log.write_bytes(b"old\n")
    seen: list[bytes] = []

    def append(data: bytes) -> Callable[[], object]:
        def write() -> None:
            with log.open("ab") as f:
                f.write(data)

        return write

    steps = iter([append(b"one\n"), lambda: log.write_bytes(b""), append(b"two\n")])  # a cut

    def sleep(_: float) -> None:
        step = next(steps, None)
        if step is not None:
            step()

    def stop() -> bool:
        return len(seen) >= 2

    for data in follow(log, sleep=sleep, stop=stop):
        seen.append(data)
    assert seen == [b"one\n", b"two\n"]


def test_a_boot_records_its_command_lines_and_marks_the_log(tmp_path: Path) -> None:
    command = BootCommand(("bhyveload", "-m", "1G", "vm1"), ("bhyve", "-c", "1", "vm1"), 0.0)
    note_boot(tmp_path, command)
    assert read_boot_command(tmp_path) == command
    assert (tmp_path / BOOT_LOG).read_bytes() == b"--- 1970-01-01 00:00:00Z boot: bhyve -c 1 vm1\n"
    (tmp_path / CMDLINE).write_text("{broken")
    assert read_boot_command(tmp_path) is None


def test_a_boot_cuts_a_log_grown_too_large(tmp_path: Path) -> None:
    log = tmp_path / BOOT_LOG
    log.write_bytes(b"z" * (3 << 20))
    note_boot(tmp_path, BootCommand(None, ("bhyve", "vm1"), 0.0))
    assert rotated(log).stat().st_size == 1 << 20
    assert log.read_bytes().startswith(b"--- ")
