"""The ledger's file: written atomically, read back exactly, and refused with one clear line
when it is damaged or newer, never taken as empty (issue: a corrupt ledger was a traceback)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from reconciler.errors import StateError
from reconciler.host.files import load_ledger, save_ledger, write_atomic
from reconciler.ledger import LEDGER_FILE, CreatedInterface, Ledger

LEDGER = Ledger(
    interfaces={
        "tap0": CreatedInterface("tap", "web"),
        "bridge1": CreatedInterface("bridge", "web"),
    },
    members={("bridge1", "tap0"): "web"},
    disks={"/vm/web.img": "web"},
    files={"/state/guests/web/BHYVE_UEFI_VARS.fd": "web"},
    orders={"web": 3},
)


def test_a_saved_ledger_reads_back_equal(tmp_path: Path) -> None:
    save_ledger(tmp_path, LEDGER)
    assert load_ledger(tmp_path) == LEDGER
    assert oct((tmp_path / LEDGER_FILE).stat().st_mode & 0o777) == "0o600"


def test_no_ledger_is_an_empty_one(tmp_path: Path) -> None:
    assert load_ledger(tmp_path) == Ledger()


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not UTF-8"),
        (b"[]", "must be a JSON object"),
        (b'{"interfaces": {}}', "`version` must be an integer"),
        (b'{"version": 2}', "newer bhyve-reconciler"),
        (
            b'{"version": 1, "interfaces": {"tap0": {"kind": "vlan", "guest": "a"}}}',
            "tap or bridge",
        ),
        (b'{"version": 1, "interfaces": {"tap0": "a"}}', "interfaces.tap0 must be a JSON object"),
        (b'{"version": 1, "members": {}}', "`members` must be a list"),
        (b'{"version": 1, "members": [{"bridge": "b"}]}', "members[0] must be a non-empty"),
        (b'{"version": 1, "disks": {"/a": 3}}', "disks./a must be a non-empty string"),
        (b'{"version": 1, "orders": {"a": "1"}}', "orders.a must be an integer"),
        (b"[" * 100_000, "not valid JSON"),
    ],
)
def test_a_damaged_ledger_is_one_line_naming_file_problem_and_recovery(
    tmp_path: Path, content: bytes, fragment: str
) -> None:
    (tmp_path / LEDGER_FILE).write_bytes(content)
    with pytest.raises(StateError) as caught:
        load_ledger(tmp_path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(str(tmp_path / LEDGER_FILE) + ": ")
    assert fragment in message
    assert "to recover" in message


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    write_atomic(target, "old\n")
    too_big = "x" * 64
    # RLIMIT_FSIZE makes the write fail as a full disk would (EFBIG instead of ENOSPC).
    import resource
    import signal

    old_limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (16, old_limit[1]))
    try:
        with pytest.raises(OSError):
            write_atomic(target, too_big)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, old_limit)
        signal.signal(signal.SIGXFSZ, old_handler)
    assert target.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["state.json"]


def test_the_file_format_is_plain_json_an_admin_can_read(tmp_path: Path) -> None:
    save_ledger(tmp_path, LEDGER)
    data = json.loads((tmp_path / LEDGER_FILE).read_text())
    assert data["version"] == 1
    assert data["members"] == [{"bridge": "bridge1", "member": "tap0", "guest": "web"}]
