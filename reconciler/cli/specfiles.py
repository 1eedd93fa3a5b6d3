"""Writing new guest specs into conf.d for `import` and `new`: complete or not at all, 0644,
never over an existing file; and the claims of the specs already there.

Edge code for the CLI. A spec appears in conf.d in one step (a hidden temporary file linked to
its name), so the daemon's watcher never reads half of one, and the link fails when the name
exists, so an existing spec is never replaced, even by a race.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import tomli_w

from reconciler.conflicts import Candidate, check_conflicts
from reconciler.errors import SpecError
from reconciler.guestfile import SUFFIX, guest_to_toml, parse_guest_text
from reconciler.spec import GuestSpec
from reconciler.specdir import ConfDir

SPEC_MODE = 0o644  # root writes conf.d; everyone may read what runs (README "A guest")


def spec_text(spec: GuestSpec, header: Sequence[str] = ()) -> str:
    """The guest file of `spec` (tomli-w), after `header` lines written as TOML comments."""
    comments = "".join(f"# {line}\n" if line else "#\n" for line in header)
    return comments + ("\n" if comments else "") + tomli_w.dumps(guest_to_toml(spec))


def check_spec_text(text: str, path: Path) -> list[SpecError]:
    """What the daemon would say about `text` as the file at `path` (nothing when valid)."""
    spec, errors = parse_guest_text(text, file=str(path), stem=path.name.removesuffix(SUFFIX))
    return errors if spec is None else []


def create_file(path: Path, text: str, mode: int = SPEC_MODE) -> bool:
    """Write `text` as the new file `path`; False (and nothing written) if `path` exists.
    Raises OSError when the directory cannot take it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.new")
    tmp.unlink(missing_ok=True)  # left by a crashed run with this pid: ours to replace
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        try:
            data = memoryview(text.encode())
            while data:
                data = data[os.write(fd, data) :]
            os.fchmod(fd, mode)  # whatever the umask says
            os.fsync(fd)
        finally:
            os.close(fd)
        os.link(tmp, path)  # EEXIST if a spec has that name: it is never replaced
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)
    return True


@dataclass(frozen=True)
class ConfDirState:
    """The specs already in a conf.d: the accepted guests, with the file each came from."""

    guests: Mapping[str, GuestSpec]

    def clashes(self, new: Mapping[Path, GuestSpec]) -> dict[Path, list[str]]:
        """For each new file that claims a name, tap, disk or console an existing spec holds
        (or another new file holds first, by path), why it may not be written."""
        existing = [Candidate(spec.source, spec) for spec in self.guests.values()]
        incumbents = {name: spec.source for name, spec in self.guests.items()}
        fresh = [Candidate(str(path), spec, mtime_ns=1) for path, spec in sorted(new.items())]
        _accepted, errors = check_conflicts([*existing, *fresh], incumbents)
        out: dict[Path, list[str]] = {}
        for error in errors:
            out.setdefault(Path(error.file), []).append(error.message)
        return out


def read_conf_dir(conf_dir: Path, root: Path) -> ConfDirState:
    """The accepted guests of `conf_dir` (an empty one when it holds none)."""
    snapshot = ConfDir(conf_dir, root=root).scan()
    return ConfDirState(guests=dict(snapshot.guests))
