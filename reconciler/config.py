"""The daemon's own config file (`--config`, default /usr/local/etc/bhyve-reconciler.toml).

Pure: parses TOML text into a frozen `DaemonConfig`; every host path lives here so the
simulated host and the tests can point the real driver elsewhere (DESIGN.md rule 8).
"""

from __future__ import annotations

import posixpath
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from reconciler.errors import SpecError
from reconciler.spec import (
    IFNAME_RE,
    IFNAME_RULE,
    _describe,
    _parse_duration_key,
    _Reader,
    _show,
    _Table,
    path_problem,
    syntax_error,
)

DEFAULT_CONFIG_PATH = Path("/usr/local/etc/bhyve-reconciler.toml")


@dataclass(frozen=True)
class DaemonConfig:
    conf_dir: Path = Path("/usr/local/etc/bhyve-reconciler/conf.d")
    state_dir: Path = Path("/var/db/bhyve-reconciler")
    run_dir: Path = Path("/var/run/bhyve-reconciler")
    vmm_dir: Path = Path("/dev/vmm")
    stop_timeout: float = 120.0  # seconds
    resync_interval: float = 30.0  # seconds
    # uplinks: bridge name -> members the config (not a guest) puts in it
    bridges: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def with_conf_dir(self, conf_dir: Path) -> DaemonConfig:
        return replace(self, conf_dir=conf_dir)


_TOP_KEYS = ("conf_dir", "state_dir", "run_dir", "vmm_dir", "stop_timeout", "resync_interval",
             "bridges")  # fmt: skip
_PATH_KEYS = ("conf_dir", "state_dir", "run_dir", "vmm_dir")
_BRIDGE_KEYS = ("members",)


def _parse_path(table: _Table, key: str, base: Path) -> Path | None:
    value = table.string(key)
    if value is None:
        return None
    # Relative paths follow the config file, not the daemon's working directory.
    resolved = posixpath.normpath(posixpath.join(str(base), value)) if value else value
    problem = path_problem(resolved, absolute=False)
    if problem is not None:
        table.error(key, f"{_show(value)} {problem}")
        return None
    return Path(resolved)


def _parse_bridges(top: _Table) -> dict[str, tuple[str, ...]]:
    if "bridges" not in top:
        return {}
    value = top.data["bridges"]
    if not isinstance(value, Mapping):
        top.error("bridges", f"expected tables like [bridges.bridge0], got {_describe(value)}")
        return {}
    bridges: dict[str, tuple[str, ...]] = {}
    owner: dict[str, str] = {}
    for name, body in value.items():
        key = f"bridges.{name}"
        if IFNAME_RE.fullmatch(name) is None:
            top.reader.error(key, f"the bridge name must be {IFNAME_RULE}")
            continue
        if not isinstance(body, Mapping):
            top.reader.error(key, f"expected a table ([{key}]), got {_describe(body)}")
            continue
        table = _Table(top.reader, body, key, _BRIDGE_KEYS)
        members: list[str] = []
        for index, member in enumerate(table.array("members") or []):
            member_key = f"{key}.members[{index}]"
            if not isinstance(member, str) or IFNAME_RE.fullmatch(member) is None:
                shown = _describe(member)
                top.reader.error(member_key, f"expected {IFNAME_RULE}, got {shown}")
            elif member == name:
                top.reader.error(member_key, "a bridge cannot be a member of itself")
            elif member in owner:
                # if_bridge refuses an interface that is already in a bridge.
                top.reader.error(member_key, f"`{member}` is already a member of {owner[member]}")
            else:
                owner[member] = key
                members.append(member)
        bridges[name] = tuple(members)
    return bridges


def parse_config(text: str, *, file: str) -> tuple[DaemonConfig, list[SpecError]]:
    """The daemon config in `text` (from `file`), and every error in it.

    Keys in error keep their defaults in the returned config, so a caller that chooses to
    carry on gets the documented behaviour for them.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return DaemonConfig(), [syntax_error(exc, text, file=file)]
    reader = _Reader(file)
    top = _Table(reader, data, "", _TOP_KEYS)
    base = Path(file).parent
    defaults = DaemonConfig()
    paths = {key: _parse_path(top, key, base) for key in _PATH_KEYS}
    durations = {key: _parse_duration_key(top, key) for key in ("stop_timeout", "resync_interval")}
    config = DaemonConfig(
        conf_dir=paths["conf_dir"] or defaults.conf_dir,
        state_dir=paths["state_dir"] or defaults.state_dir,
        run_dir=paths["run_dir"] or defaults.run_dir,
        vmm_dir=paths["vmm_dir"] or defaults.vmm_dir,
        stop_timeout=durations["stop_timeout"] or defaults.stop_timeout,
        resync_interval=durations["resync_interval"] or defaults.resync_interval,
        bridges=_parse_bridges(top),
    )
    return config, reader.errors
