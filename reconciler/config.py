"""The daemon's own config file (`--config`, default /usr/local/etc/bhyve-reconciler.toml).

Pure: parses TOML text (or bytes, through the same bounded loader as guest files) into a frozen
`DaemonConfig`; every host path lives here so the simulated host and the tests can point the
real driver elsewhere (DESIGN.md rule 9). `CONFIG` declares each key once; the defaults are the
dataclass fields'.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from reconciler.errors import SpecError
from reconciler.guestkeys import MAX_STOP_TIMEOUT
from reconciler.placement import PLACEMENTS, PlacementMode, host_name_problem
from reconciler.schema import (
    Array,
    Choice,
    Duration,
    HostPath,
    Key,
    SubTable,
    TableMap,
    TableSpec,
    Text,
)
from reconciler.settings import Backoff, Timings
from reconciler.tomlload import load_toml
from reconciler.tomlreader import Entry, Reader, Section, build, read_table
from reconciler.valuerules import IFNAME_RE, IFNAME_RULE, describe

DEFAULT_CONFIG_PATH = Path("/usr/local/etc/bhyve-reconciler.toml")
# Longer than a day is a typo; far longer would overflow the daemon loop's wait.
MAX_RESYNC_INTERVAL = 86400.0


@dataclass(frozen=True)
class Tuning:
    """`[timings]`: the waits an admin may tune (settings.Timings holds every timing)."""

    crash_backoff: float = 1.0
    crash_backoff_max: float = 300.0
    stable_after: float = 600.0
    kill_grace: float = 5.0
    debounce: float = 0.02
    metrics_interval: float = 15.0  # how often metrics_file is rewritten
    boot_log_check: float = 10.0

    def timings(self) -> Timings:
        backoff = Backoff(
            base=self.crash_backoff,
            cap=max(self.crash_backoff, self.crash_backoff_max),
            stable_after=self.stable_after,
        )
        return Timings(
            backoff=backoff,
            kill_grace=self.kill_grace,
            conf_quiet=self.debounce,
            boot_log_check=self.boot_log_check,
        )


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
    timings: Tuning = field(default_factory=Tuning)
    host_name: str | None = None  # None: the machine's short host name (see placement.py)
    placement: PlacementMode = "any"
    metrics_listen: str | None = None  # "ADDR:PORT" serving /metrics; None: no server
    metrics_file: Path | None = None  # the same exposition, for node_exporter's textfile

    def with_conf_dir(self, conf_dir: Path) -> DaemonConfig:
        return replace(self, conf_dir=conf_dir)


@dataclass(frozen=True)
class Uplinks:
    """One `[bridges.NAME]` table."""

    members: tuple[str, ...] = ()


def _path(section: Section, key: str, value: str) -> Path:
    return Path(value)


def _members(section: Section, key: str, items: list[Any]) -> tuple[str, ...]:
    out = []
    for index, member in enumerate(items):
        if not isinstance(member, str) or IFNAME_RE.fullmatch(member) is None:
            section.reader.error(
                f"{section.path(key)}[{index}]", f"expected {IFNAME_RULE}, got {describe(member)}"
            )
        else:
            out.append(member)
    return tuple(out)


def _host_name(section: Section, key: str, value: str) -> str | None:
    problem = host_name_problem(value)
    if problem is not None:
        section.error(key, f"{problem}, got {describe(value)}")
        return None
    return value.lower()


def _listen(section: Section, key: str, value: str) -> str | None:
    if listen_address(value) is None:
        section.error(
            key,
            'expected "ADDRESS:PORT" like "127.0.0.1:9712" or "[::1]:9712" (port 0: any free '
            f"port), got {describe(value)}",
        )
        return None
    return value


def listen_address(value: str) -> tuple[str, int] | None:
    """`metrics_listen` as (address, port), or None when it is not one."""
    host, sep, port = value.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or any(c.isspace() or c in "[]/" for c in host):
        return None
    if not (port.isascii() and port.isdigit() and len(port) <= 5 and int(port) <= 65535):
        return None
    return host, int(port)


def _bridge_name(name: str) -> str | None:
    return None if IFNAME_RE.fullmatch(name) else f"the bridge name must be {IFNAME_RULE}"


def _bridges(section: Section, key: str, entries: list[Entry]) -> dict[str, tuple[str, ...]]:
    """Each bridge's uplinks; if_bridge refuses an interface already in a bridge, and a bridge
    in itself."""
    bridges: dict[str, tuple[str, ...]] = {}
    owner: dict[str, str] = {}
    for entry in entries:
        uplinks: Uplinks = entry.value
        members = []
        raw = entry.raw.get("members") if isinstance(entry.raw, Mapping) else None
        for index, member in enumerate(raw if isinstance(raw, list) else []):
            if member not in uplinks.members:
                continue  # not an interface name: reported by `_members`
            member_key = f"{entry.path}.members[{index}]"
            if member == entry.name:
                section.reader.error(member_key, "a bridge cannot be a member of itself")
            elif member in owner:
                section.reader.error(
                    member_key, f"`{member}` is already a member of {owner[member]}"
                )
            else:
                owner[member] = entry.path
                members.append(member)
        bridges[str(entry.name)] = tuple(members)
    return bridges


BRIDGE = TableSpec(
    model=Uplinks,
    keys=(
        Key("members", Array(), "interfaces the daemon adds to the bridge (uplinks)",
            example=["igb0"], rule=_members),
    ),
)  # fmt: skip


TIMINGS = TableSpec(
    model=Tuning,
    keys=(
        Key("crash_backoff", Duration(MAX_STOP_TIMEOUT), "the wait before the first restart "
            "after a crash; it doubles with each quick crash", example="2s"),
        Key("crash_backoff_max", Duration(MAX_RESYNC_INTERVAL), "the longest wait between "
            "restarts of a crash-looping guest", example="10m"),
        Key("stable_after", Duration(MAX_RESYNC_INTERVAL), "how long a guest must run without "
            "failing for its past crashes to be forgiven", example="30m"),
        Key("kill_grace", Duration(MAX_STOP_TIMEOUT), "after a forced power-off, how long "
            "before SIGKILL (and after SIGKILL, before the stop is given up)", example="10s"),
        Key("debounce", Duration(60.0), "how long conf.d must be quiet after a change before "
            "a pass (a burst of files becomes one pass)", example="100ms"),
        Key("metrics_interval", Duration(MAX_RESYNC_INTERVAL), "how often metrics_file is "
            "rewritten", example="1m"),
        Key("boot_log_check", Duration(MAX_STOP_TIMEOUT), "how often the boot logs of running "
            "guests are looked at, to cut one that grew past 1 MiB", example="1m"),
    ),
)  # fmt: skip


def _directory(name: str, meaning: str, example: str) -> Key:
    return Key(name, HostPath(relative=True), meaning, example=example, rule=_path, dump=str)


CONFIG = TableSpec(
    model=DaemonConfig,
    keys=(
        _directory("conf_dir", "the directory of guest files", "/etc/vms/conf.d"),
        _directory("state_dir", "what the reconciler created and accepted (ledger)",
                   "/var/db/vms"),
        _directory("run_dir", "runtime records: boot records, status, control socket",
                   "/var/run/vms"),
        _directory("vmm_dir", "where the kernel lists VMs (/dev/vmm)", "/sim/dev/vmm"),
        Key("stop_timeout", Duration(MAX_STOP_TIMEOUT), "how long a guest's ACPI shutdown may "
            "take before a forced power-off, unless its file says otherwise", example="3m"),
        Key("resync_interval", Duration(MAX_RESYNC_INTERVAL), "how often to re-read conf.d "
            "and observe the host without an event", example="10s"),
        Key("bridges", TableMap(Key("<name>", SubTable(BRIDGE), "one bridge's uplinks"),
            _bridge_name, "bridge0"), "bridges and the interfaces the config puts in them",
            rule=_bridges),
        Key("timings", SubTable(TIMINGS), "waits an admin may tune: crash backoff, kill "
            "grace, conf.d debounce"),
        Key("host_name", Text(), "this host's name in guest files' `host` key and in "
            "shared-storage locks; unique in a fleet", example="hv1", rule=_host_name,
            default_doc="the machine's short host name (hostname -s)"),
        Key("placement", Choice(PLACEMENTS), '"any": a guest file without `host` runs here; '
            '"required": only files naming this host run here (a fleet)',
            example="required"),
        Key("metrics_listen", Text(), "serve Prometheus metrics at http://ADDRESS:PORT/metrics",
            example="127.0.0.1:9712", rule=_listen),
        _directory("metrics_file", "write the same metrics there (node_exporter's textfile "
                   "collector reads *.prom files)", "/var/tmp/node_exporter/bhyve.prom"),
    ),
)  # fmt: skip


def parse_config(source: str | bytes, *, file: str) -> tuple[DaemonConfig, list[SpecError]]:
    """The daemon config in `source` (from `file`), and every error in it.

    Keys in error keep their defaults in the returned config, so a caller that chooses to
    carry on gets the documented behaviour for them.
    """
    data, errors = load_toml(source, file=file)
    if data is None:
        return DaemonConfig(), errors
    reader = Reader(file)
    values = read_table(Section(reader, data, "", CONFIG.known), CONFIG)
    config: DaemonConfig = build(CONFIG, values)
    return config, reader.errors
