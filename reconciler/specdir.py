"""The `conf.d/` directory as a set of accepted guest specs, re-read as cheaply as possible.

Edge code whose only I/O is listing, stat and read: it turns files into a `ConfSnapshot`
(the accepted guests, every problem, each file's status) and never writes, runs or logs.
A broken, refused or conflicting file keeps its guest's last good spec (DESIGN.md rule 2).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from reconciler.accepted import Accepted
from reconciler.cloudfiles import (
    Refs,
    disk_warnings,
    read_referenced,
    referenced_paths,
    signatures,
)
from reconciler.conflicts import Candidate, Claims, check_conflicts
from reconciler.errors import SpecError
from reconciler.guestfile import is_spec_file_name, parse_guest_text
from reconciler.spec import GuestSpec
from reconciler.tomlload import FILE_KEY, MAX_TOML_BYTES

FileState = Literal["valid", "invalid", "conflict", "refused"]
# What a file's stat must keep for its last parse to stay good (DESIGN.md rule 7).
StatSignature = tuple[int, int, int, int, int]

_DIR_KEY = "(directory)"


@dataclass(frozen=True)
class FileStatus:
    """How one spec file fared in a scan. `guest` is the guest it provides, if any."""

    file: str
    status: FileState
    guest: str | None = None


@dataclass(frozen=True)
class ConfSnapshot:
    """One scan of `conf.d/`: the desired guests, and what is wrong with which file."""

    guests: Mapping[str, GuestSpec]
    problems: tuple[SpecError, ...]
    files: Mapping[str, FileStatus]
    generation: int

    @property
    def errors(self) -> tuple[SpecError, ...]:
        return tuple(p for p in self.problems if not p.warning)


@dataclass(frozen=True)
class _Parsed:
    """A file's content as of one stat signature."""

    signature: StatSignature
    spec: GuestSpec | None
    errors: tuple[SpecError, ...]
    refused: bool = False
    refs: Refs = ()  # the files its [cloud_init] reads, as stat saw them before the read


def _file_state(parsed: _Parsed, *, accepted: bool) -> FileState:
    if parsed.refused:
        return "refused"
    if parsed.errors:
        return "invalid"
    return "valid" if accepted else "conflict"


def _signature(st: os.stat_result) -> StatSignature:
    return (st.st_mtime_ns, st.st_size, st.st_ino, st.st_mode, st.st_uid)


def _problem_key(p: SpecError) -> tuple[str, str]:
    return (p.file, p.key)


class ConfDir:
    """Scans a spec directory, re-parsing only files whose stat signature changed.

    `root` prefixes host paths checked for existence (ISO, firmware), so a simulated host can
    keep them under its own directory. `parses` counts files actually read and parsed.
    `claims` are things held outside the files, (kind, thing) -> guest (taps the reconciler
    allocated): a file that claims one for another guest is refused. The caller may replace
    them; the next scan settles again when they changed. `accepted` is what was accepted
    before this process (state_dir): each guest's spec and the file that owns its name, so a
    file that is broken, refused or untrusted now keeps its guest on that spec, and a refused
    duplicate stays refused, across daemon restarts. A file is read again when a file its
    `[cloud_init]` names changed too. `check_disks` (for `validate`) warns of disk images that
    are missing or not raw and of sizes smaller than their disk.
    """

    def __init__(
        self,
        path: Path,
        *,
        root: Path = Path("/"),
        euid: int | None = None,
        claims: Claims | None = None,
        accepted: Mapping[str, Accepted] | None = None,
        check_disks: bool = False,
    ) -> None:
        self.path = path
        self.check_disks = check_disks
        self.root = root
        self.euid = os.geteuid() if euid is None else euid
        self.claims: Claims = MappingProxyType(dict(claims or {}))
        self.parses = 0
        self._root_prefix = str(root).rstrip("/")
        # The claims of the last settlement; None before the first.
        self._settled_claims: Claims | None = None
        self._parsed: dict[str, _Parsed] = {}
        seed = dict(accepted or {})
        self._last_good: dict[str, GuestSpec] = {a.file: a.spec for a in seed.values()}
        self._previous: ConfSnapshot = ConfSnapshot(
            guests=MappingProxyType({name: a.spec for name, a in seed.items()}),
            problems=(),
            files=MappingProxyType({}),
            generation=0,
        )

    @property
    def snapshot(self) -> ConfSnapshot:
        """The result of the last scan (empty before the first)."""
        return self._previous

    def scan(self) -> ConfSnapshot:
        """Re-read what changed and return the new desired set with every problem."""
        distrust = self._distrust()
        if distrust is not None:
            # Anyone could have written what is there now: change nothing until it is fixed.
            problem = SpecError(str(self.path), _DIR_KEY, distrust)
            return self._publish(self._previous.guests, [problem], self._previous.files)
        try:
            names = sorted(
                entry.name for entry in os.scandir(self.path) if is_spec_file_name(entry.name)
            )
        except OSError as exc:
            # An unreadable conf.d says nothing about the guests: keep them all.
            problem = SpecError(str(self.path), _DIR_KEY, f"cannot list: {exc.strerror}")
            return self._publish(self._previous.guests, [problem], self._previous.files)

        current: dict[str, _Parsed] = {}
        base = str(self.path).rstrip("/") + "/"
        for name in names:
            file = base + name
            parsed = self._load(file, name[: -len(".toml")])
            if parsed is not None:
                current[file] = parsed
        unchanged = current.keys() == self._parsed.keys() and all(
            parsed is self._parsed[file] for file, parsed in current.items()
        )
        self._parsed = current
        if unchanged and self._settled_claims == self.claims:
            # Nothing was re-parsed: the settlement stands; only install media or firmware
            # may have appeared or vanished since.
            return self._refresh_warnings()
        self._last_good = {f: s for f, s in self._last_good.items() if f in current}
        self._settled_claims = dict(self.claims)
        return self._resolve(current)

    def _refresh_warnings(self) -> ConfSnapshot:
        previous = self._previous
        seen: dict[str, bool] = {}
        warnings = [w for g in previous.guests.values() for w in self._missing_files(g, seen)]
        before = [(p.file, p.key, p.message) for p in previous.problems if p.warning]
        if sorted((w.file, w.key, w.message) for w in warnings) == sorted(before):
            return previous
        errors = [p for p in previous.problems if not p.warning]
        return self._publish(previous.guests, errors + warnings, previous.files)

    def _load(self, file: str, stem: str) -> _Parsed | None:
        """The file's parse, from cache when its stat is unchanged; None when it is gone."""
        try:
            st = os.stat(file)
        except OSError:
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        cached = self._parsed.get(file)
        if cached is not None and cached.signature == _signature(st) and self._same_refs(cached):
            return cached
        try:
            # O_NONBLOCK: a FIFO swapped in after the stat must not hang the scan.
            fd = os.open(file, os.O_RDONLY | os.O_NONBLOCK)
        except OSError as exc:
            return _Parsed(_signature(st), None, (SpecError(file, FILE_KEY, str(exc.strerror)),))
        with os.fdopen(fd, "rb") as handle:
            # Judge and cache the file actually opened, not the one stat saw a moment ago.
            st = os.fstat(handle.fileno())
            if not stat.S_ISREG(st.st_mode):
                return None
            refusal = self._refusal(file, st)
            if refusal is not None:
                return _Parsed(_signature(st), None, (refusal,), refused=True)
            # One byte more than allowed is enough for the loader to refuse it.
            raw = handle.read(MAX_TOML_BYTES + 1)
        self.parses += 1
        spec, errors = parse_guest_text(raw, file=file, stem=stem)
        refs: Refs = ()
        if spec is not None:
            refs = signatures(referenced_paths(spec), self._root_prefix)
            spec, errors = read_referenced(spec, self._root_prefix, self._refusal_of(file))
        return _Parsed(_signature(st), spec, tuple(errors), refs=refs)

    def _same_refs(self, parsed: _Parsed) -> bool:
        """Whether the files a spec's [cloud_init] reads are as they were when it was read."""
        paths = tuple(path for path, _signature in parsed.refs)
        return not paths or signatures(paths, self._root_prefix) == parsed.refs

    def _refusal_of(self, file: str) -> Callable[[os.stat_result], str | None]:
        def refusal(st: os.stat_result) -> str | None:
            refused = self._refusal(file, st)
            return None if refused is None else refused.message

        return refusal

    def _distrust(self) -> str | None:
        """Why conf_dir itself cannot be trusted now (checked every scan, one stat): a
        directory others may write lets them remove a spec (stopping its guest) or drop one in
        (running a guest as root)."""
        try:
            st = os.stat(self.path)
        except OSError:
            return None  # reported as a listing failure
        why = _loose(st, self.euid)
        if why is None:
            return None
        return f"refused: the directory {why}; no change in it is followed until it is fixed"

    def _refusal(self, file: str, st: os.stat_result) -> SpecError | None:
        """Why a file others could have written is not trusted, as sshd treats authorized_keys.
        A symlinked spec is judged as its link (who owns it), its target, and the target's
        directory (who could replace the target)."""
        why = _loose(st, self.euid)
        if why is None:
            try:
                link = os.lstat(file)
                if stat.S_ISLNK(link.st_mode):
                    why = _link_problem(file, link, self.euid)
            except OSError as exc:
                why = f"cannot be checked: {exc.strerror}"
        return None if why is None else SpecError(file, FILE_KEY, f"refused: {why}")

    def _resolve(self, current: Mapping[str, _Parsed]) -> ConfSnapshot:
        """Settle conflicts, fall back to last good specs, and publish the result."""
        incumbents = {name: spec.source for name, spec in self._previous.guests.items()}
        mtimes = {file: parsed.signature[0] for file, parsed in current.items()}
        chosen: dict[str, GuestSpec] = {}
        for file, parsed in current.items():
            spec = parsed.spec if parsed.spec is not None else self._last_good.get(file)
            if spec is not None:
                chosen[file] = spec

        def settle() -> tuple[set[str], dict[str, list[SpecError]]]:
            candidates = [Candidate(f, s, mtimes[f]) for f, s in chosen.items()]
            accepted, errors = check_conflicts(candidates, incumbents, self.claims)
            by_file: dict[str, list[SpecError]] = {}
            for error in errors:
                by_file.setdefault(error.file, []).append(error)
            return {c.file for c in accepted}, by_file

        accepted, conflicts = settle()
        # A file whose edit conflicts keeps its last good spec, which was conflict-free when
        # it was accepted; settle again with those in place.
        fallen_back = {
            file
            for file in conflicts
            if file in self._last_good and chosen[file] != self._last_good[file]
        }
        if fallen_back:
            for file in fallen_back:
                chosen[file] = self._last_good[file]
            accepted, second = settle()
            # A fallen-back file still reports why its edit was refused; for every other file
            # only the final settlement counts.
            conflicts = {f: conflicts[f] + second.get(f, []) for f in fallen_back} | {
                f: errors for f, errors in second.items() if f not in fallen_back
            }

        problems: list[SpecError] = []
        seen: dict[str, bool] = {}
        files: dict[str, FileStatus] = {}
        guests: dict[str, GuestSpec] = {}
        for file, parsed in current.items():
            spec = chosen.get(file) if file in accepted else None
            if spec is not None:
                guests[spec.name] = spec
                if spec is parsed.spec:
                    self._last_good[file] = spec
                problems.extend(self._missing_files(spec, seen))
            problems.extend(parsed.errors)
            problems.extend(conflicts.get(file, ()))
            status = _file_state(parsed, accepted=spec is not None and file not in conflicts)
            named = spec or parsed.spec
            files[file] = FileStatus(
                file=file, status=status, guest=named.name if named is not None else None
            )
        return self._publish(guests, problems, files)

    def _missing_files(self, spec: GuestSpec, seen: dict[str, bool]) -> list[SpecError]:
        """Warnings for install media and firmware not (yet) on the host. `seen` remembers
        what one scan already checked: a thousand UEFI guests share one firmware file."""
        wanted: list[tuple[str, str]] = []
        if spec.install is not None:
            wanted.append(("install.iso", spec.install.iso))
        if spec.loader == "uefi":
            wanted.append(("uefi.firmware", spec.uefi.firmware))
        missing = []
        for key, path in wanted:
            exists = seen.get(path)
            if exists is None:
                exists = seen[path] = os.path.exists(self._root_prefix + path)
            if not exists:
                missing.append(
                    SpecError(spec.source, key, f"{path} does not exist (yet)", warning=True)
                )
        if self.check_disks:
            missing += disk_warnings(spec, self._root_prefix)
        return missing

    def _publish(
        self,
        guests: Mapping[str, GuestSpec],
        problems: list[SpecError],
        files: Mapping[str, FileStatus],
    ) -> ConfSnapshot:
        previous = self._previous
        changed = dict(guests) != dict(previous.guests)
        snapshot = ConfSnapshot(
            guests=MappingProxyType(dict(guests)),
            problems=tuple(sorted(problems, key=_problem_key)),
            files=MappingProxyType(dict(files)),
            generation=previous.generation + 1 if changed else previous.generation,
        )
        self._previous = snapshot
        return snapshot


def _loose(st: os.stat_result, euid: int) -> str | None:
    mode = stat.S_IMODE(st.st_mode)
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"mode {mode:04o} lets group or others write it (chmod go-w)"
    if euid == 0 and st.st_uid != 0:
        return f"owned by uid {st.st_uid}, not root (chown root)"
    return None


def _link_problem(file: str, link: os.stat_result, euid: int) -> str | None:
    if euid == 0 and link.st_uid != 0:
        return f"the symlink is owned by uid {link.st_uid}, not root"
    target_dir = os.path.dirname(os.path.realpath(file))
    why = _loose(os.stat(target_dir), euid)
    return None if why is None else f"its target's directory {target_dir}: {why}"
