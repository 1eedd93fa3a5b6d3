"""What every subcommand starts from: the daemon config, which host to drive, and where.

Edge code for the CLI: reads the config file, picks the host (FreeBSD, the simulated host, or
none off FreeBSD unless asked), and opens the driver. It prints nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.config import DEFAULT_CONFIG_PATH, DaemonConfig
from reconciler.errors import HostRefused
from reconciler.host.files import read_config
from reconciler.host.freebsd import FreeBSDHost
from reconciler.host.runner import SubprocessRunner

if TYPE_CHECKING:
    from reconciler.sim import SimulatedHost

SIM_PLAYGROUND = Path(".bhyve-sim")
# The host to drive when no option names one: "simulated" lets the FreeBSD commands of the
# README run, as written, against the simulated host.
HOST_ENV = "BHYVE_RECONCILER_HOST"


@dataclass(frozen=True)
class Context:
    config: DaemonConfig
    host_kind: str  # "freebsd", "simulated" or "none" (not on FreeBSD, nothing asked)
    sim_root: Path | None
    config_path: Path | None = None
    playground: bool = False  # --simulate without --config: everything under --sim-dir

    @property
    def root(self) -> Path:
        """Where host paths (ISOs, firmware, disks) live for this process."""
        return self.sim_root if self.sim_root is not None else Path("/")


def load_context(args: argparse.Namespace) -> Context:
    host_kind = args.host or ("simulated" if args.simulate else None) or _host_from_env()
    if args.simulate and args.host == "freebsd":
        raise HostRefused("--simulate and --host freebsd contradict each other")
    if host_kind is None:
        host_kind = "freebsd" if sys.platform.startswith("freebsd") else "none"
    config_path: Path | None = args.config
    if config_path is None and DEFAULT_CONFIG_PATH.exists() and host_kind != "simulated":
        config_path = DEFAULT_CONFIG_PATH
    if config_path is not None:
        config = read_config(config_path)
    elif host_kind == "simulated":
        config = playground_config(args.sim_dir or SIM_PLAYGROUND)
    else:
        config = DaemonConfig()
    if args.conf_dir is not None:
        config = config.with_conf_dir(args.conf_dir)
    elif config_path is None and host_kind != "freebsd" and Path("conf.d").is_dir():
        config = config.with_conf_dir(Path("conf.d"))
    sim_root = None
    if host_kind == "simulated":
        if config_path is None:
            sim_root = (args.sim_dir or SIM_PLAYGROUND).absolute() / "host"
        else:
            sim_root = args.sim_dir.absolute() if args.sim_dir else config.state_dir / "sim"
    return Context(
        config=config,
        host_kind=host_kind,
        sim_root=sim_root,
        config_path=config_path,
        playground=host_kind == "simulated" and config_path is None,
    )


def _host_from_env() -> str | None:
    value = os.environ.get(HOST_ENV) or None
    if value not in (None, "freebsd", "simulated"):
        raise HostRefused(f"{HOST_ENV}={value}: expected freebsd or simulated")
    return value


def playground_config(sim_dir: Path) -> DaemonConfig:
    """Without --config, --simulate keeps everything under one directory: the daemon's own
    directories live on the simulated host's file system, as they would on FreeBSD; the
    config puts igb0 in bridge0 so the example guests reproduce the Handbook's host."""
    host = sim_dir.absolute() / "host"
    return replace(
        DaemonConfig(),
        state_dir=host / "var/db/bhyve-reconciler",
        run_dir=host / "var/run/bhyve-reconciler",
        conf_dir=Path("conf.d").absolute(),
        bridges={"bridge0": ("igb0",)},
    )


def open_host(ctx: Context) -> FreeBSDHost:
    """The driver for this context; refuses a real host unless it is FreeBSD or asked for."""
    if ctx.host_kind == "none":
        raise HostRefused(
            "this is not FreeBSD: pass --simulate to use the simulated host, or --host freebsd "
            "to run the FreeBSD driver with the tools on PATH"
        )
    if ctx.host_kind == "simulated":
        sim = simulated_host(ctx)
        return FreeBSDHost(SubprocessRunner(sim.env()), root=sim.root, vmm_dir=ctx.config.vmm_dir)
    return FreeBSDHost(SubprocessRunner(), vmm_dir=ctx.config.vmm_dir)


def simulated_host(ctx: Context) -> SimulatedHost:
    """The simulated host of a `--simulate` context, laid out (on first use) in its root."""
    from reconciler.sim import SimulatedHost

    assert ctx.sim_root is not None
    return SimulatedHost(ctx.sim_root).setup()
