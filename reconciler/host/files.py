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
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path

import structlog

from reconciler.accepted import Accepted, parse, render
from reconciler.config import DaemonConfig, parse_config
from reconciler.errors import SpecError, SpecErrors, StateError
from reconciler.ledger import LEDGER_FILE, Ledger, ledger_from_json, ledger_to_json
from reconciler.spec import GuestSpec


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


log = structlog.get_logger("reconciler.daemon")

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


def reread_config(path: Path, current: DaemonConfig) -> DaemonConfig | None:
    """The config reloaded (SIGHUP), keeping where things live (they cannot move under a
    running daemon); None, with every problem logged, when it is invalid."""
    try:
        config = read_config(path)
    except SpecErrors as exc:
        for p in exc.errors:
            log.error("config.invalid", file=p.file, key=p.key, error=p.message)
        return None
    return replace(
        config,
        state_dir=current.state_dir,
        run_dir=current.run_dir,
        conf_dir=current.conf_dir,
        vmm_dir=current.vmm_dir,
    )


def private_dirs(config: DaemonConfig) -> None:
    """run_dir and state_dir exist and are private (0700). (conf_dir's trust is checked on
    every scan: a loose conf_dir freezes what the files say, it does not stop the daemon.)"""
    for d in (config.run_dir, config.state_dir):
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(d, 0o700)


ACCEPTED_DIR = "accepted"
ACCEPTED_RECOVERY = (
    "fix or remove that file (the guest then follows its file in conf_dir as it stands; a "
    "guest whose file is broken would not keep its last good spec)"
)


def load_accepted(state_dir: Path) -> dict[str, Accepted]:
    """Every guest's accepted entry; a `StateError` naming the file when one is damaged."""
    directory = state_dir / ACCEPTED_DIR
    try:
        names = sorted(p.name for p in directory.iterdir() if p.name.endswith(".toml"))
    except FileNotFoundError:
        return {}
    entries: dict[str, Accepted] = {}
    for file_name in names:
        name = file_name[: -len(".toml")]
        entry = read_accepted(directory / file_name, name)
        if entry is not None:
            entries[name] = entry
    return entries


def read_accepted(path: Path, name: str) -> Accepted | None:
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise StateError(path, f"cannot read the accepted spec: {exc}", ACCEPTED_RECOVERY) from exc
    try:
        return parse(name, text)
    except ValueError as exc:
        raise StateError(path, f"the accepted spec is damaged: {exc}", ACCEPTED_RECOVERY) from exc


def save_accepted(state_dir: Path, entry: Accepted) -> None:
    """Durably, before the daemon acts on it; raises OSError (a full disk) with the old kept."""
    path = state_dir / ACCEPTED_DIR / f"{entry.spec.name}.toml"
    write_atomic(path, render(entry), mode=0o600)


def forget_accepted(state_dir: Path, name: str) -> None:
    (state_dir / ACCEPTED_DIR / f"{name}.toml").unlink(missing_ok=True)


class AcceptedStore:
    """The accepted specs in state_dir, written ahead of the daemon acting on them.

    A guest's entry is rewritten when its accepted spec changes, and removed once its file is
    absent and nothing of it is left running (`gone(name)`), so a daemon killed while a
    removed guest stops still knows how to stop it (its stop_timeout)."""

    def __init__(self, state_dir: Path, entries: Mapping[str, Accepted]) -> None:
        self.state_dir = state_dir
        self._saved: dict[str, GuestSpec] = {name: e.spec for name, e in entries.items()}

    def keep(self, guests: Mapping[str, GuestSpec], gone: Callable[[str], bool]) -> list[str]:
        """Persist what changed; the errors of writes that failed (retried next time)."""
        errors = []
        for name, spec in guests.items():
            if self._saved.get(name) == spec:
                continue
            try:
                save_accepted(self.state_dir, Accepted(spec.source, spec))
            except OSError as exc:
                errors.append(f"cannot write the accepted spec of {name}: {exc.strerror}")
                continue
            self._saved[name] = spec
        for name in [n for n in self._saved if n not in guests and gone(n)]:
            try:
                forget_accepted(self.state_dir, name)
            except OSError as exc:
                errors.append(f"cannot remove the accepted spec of {name}: {exc.strerror}")
                continue
            del self._saved[name]
        return errors
