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
import stat
from pathlib import Path

from reconciler.config import DaemonConfig, parse_config
from reconciler.errors import DaemonError, SpecError, SpecErrors, StateError
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


def read_config(path: Path) -> DaemonConfig:
    """The daemon config in `path`; `SpecErrors` with every problem when it is invalid."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        problem = SpecError(str(path), "(file)", f"cannot read the daemon config: {reason}")
        raise SpecErrors("the daemon config", [problem]) from exc
    config, problems = parse_config(text, file=str(path))
    errors = [p for p in problems if not p.warning]
    if errors:
        raise SpecErrors("the daemon config", errors)
    return config


def check_daemon_dirs(config: DaemonConfig) -> None:
    """run_dir and state_dir exist and are private (0700); conf_dir exists and only root can
    write it, since what is there runs as root."""
    for d in (config.run_dir, config.state_dir):
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(d, 0o700)
    try:
        st = os.stat(config.conf_dir)
    except FileNotFoundError:
        raise DaemonError(f"conf_dir {config.conf_dir} does not exist") from None
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise DaemonError(
            f"conf_dir {config.conf_dir} is writable by group or others "
            f"(mode {stat.S_IMODE(st.st_mode):04o}): anyone who can write there can run "
            "guests as root; chmod go-w it"
        )
    if os.geteuid() == 0 and st.st_uid != 0:
        raise DaemonError(f"conf_dir {config.conf_dir} is not owned by root")
