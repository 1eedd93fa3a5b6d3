"""The daemon's own files: atomic replacement, and the ledger's storage in `state_dir`.

Edge code: the only writer of state the daemon keeps between runs. A write replaces a whole
file atomically (temporary file, fsync, rename, fsync of the directory), so a crash or a full
disk leaves the old content or the new one, never half of either. A file that cannot be read
back as what it claims to be stops the command with a `StateError` naming the file, the problem
and the way out; it is never taken as empty.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from reconciler.errors import StateError
from reconciler.ledger import LEDGER_FILE, Ledger, ledger_from_json, ledger_to_json


def write_atomic(path: Path, text: str, mode: int = 0o600, *, durable: bool = True) -> None:
    """Replace `path` so a reader sees the old text or the new one, never half of either.
    `durable` also survives a power cut (fsync); status files that are rewritten anyway
    skip it. Raises OSError (ENOSPC, EROFS, ...) with the old file left in place."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        try:
            data = memoryview(text.encode())
            while data:
                data = data[os.write(fd, data) :]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        # A full disk must not leave a temporary behind to fill it further.
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def read_json(path: Path, *, what: str, recover: str) -> object | None:
    """The JSON in `path`, or None when it does not exist. Anything else that is wrong with it
    is a `StateError` that names it: `what` it is and how to `recover`."""
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateError(path, f"cannot read the {what}: {exc.strerror}", recover) from exc
    except UnicodeDecodeError as exc:
        raise StateError(path, f"the {what} is not UTF-8 text (byte {exc.start})", recover) from exc
    try:
        data: object = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise StateError(path, f"the {what} is not valid JSON ({exc})", recover) from exc
    return data


LEDGER_RECOVERY = (
    "restore it from a backup, or move it aside to start with an empty ledger (the taps, "
    "bridges and memberships it recorded are then left in place, never removed)"
)


def load_ledger(state_dir: Path) -> Ledger:
    """The saved ledger, or an empty one on a new host; a `StateError` if it is damaged or was
    written by a newer version."""
    path = state_dir / LEDGER_FILE
    data = read_json(path, what="ledger", recover=LEDGER_RECOVERY)
    if data is None:
        return Ledger()
    try:
        return ledger_from_json(data)
    except ValueError as exc:
        raise StateError(path, f"the ledger is damaged: {exc}", LEDGER_RECOVERY) from exc


def save_ledger(state_dir: Path, ledger: Ledger) -> None:
    """Write atomically and durably; raises OSError (a full disk) with the old ledger kept."""
    text = json.dumps(ledger_to_json(ledger), indent=2) + "\n"
    write_atomic(state_dir / LEDGER_FILE, text)
