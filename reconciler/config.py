"""The daemon's own config file (`--config`, default /usr/local/etc/bhyve-reconciler.toml).

Pure: parses TOML text into a frozen `DaemonConfig`; every host path lives here so the
simulated host and the tests can point the real driver elsewhere (DESIGN.md rule 8).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

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
