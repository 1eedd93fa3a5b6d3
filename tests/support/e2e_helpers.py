"""End-to-end rig shared by tests/cli and tests/host: a simulated FreeBSD host, a daemon config
and a conf.d in tmp_path, and the real `bhyve-reconciler` run as a separate process on them.

It only sets things up and reads results back; what the CLI should do is asserted by the tests.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import tomli_w
from cli_runner import run_cli

from reconciler.host.files import load_ledger
from reconciler.ledger import LEDGER_FILE, Ledger
from reconciler.sim import SimulatedHost

# The FreeBSD driver's whole observation of a host without zvols (DESIGN.md rule 7).
OBSERVE = [
    ["kldstat", "-v"],
    ["sysctl", "net.link.tap.up_on_open"],
    ["ifconfig", "-a"],
]

# The Handbook's guest, kept stopped: what these tests check is the host preparation.
HANDBOOK_SPEC = """\
name = "guestname"
cpus = 1
memory = "1024M"
state = "stopped"

[install]
iso = "/vm/iso/FreeBSD-14.0-RELEASE-amd64-bootonly.iso"

[[disk]]
path = "/vm/guestname/guest.img"
size = "16G"

[[nic]]
tap = "tap0"
bridge = "bridge0"
"""


def stopped_guest(name: str, disk: str, *, size: str | None = None, nic: str = "") -> str:
    """A minimal stopped guest; `nic` is a raw [[nic]] body such as 'tap = "tap1"'."""
    text = f'name = "{name}"\nstate = "stopped"\n\n[[disk]]\npath = "{disk}"\n'
    if size is not None:
        text += f'size = "{size}"\n'
    if nic:
        text += f"\n[[nic]]\n{nic}\n"
    return text


@dataclass(frozen=True)
class CliRig:
    """One simulated host with its daemon config; `cli()` runs the reconciler on it."""

    workdir: Path
    sim: SimulatedHost
    conf_dir: Path
    config: Path
    state_dir: Path

    def cli(self, *args: str, simulate: bool = True) -> subprocess.CompletedProcess[str]:
        argv = ["--config", str(self.config)]
        if simulate:
            argv += ["--simulate", "--sim-dir", str(self.sim.root)]
        return run_cli([*argv, *args], cwd=self.workdir, timeout=120)

    def logged(self, *args: str) -> tuple[subprocess.CompletedProcess[str], list[list[str]]]:
        """Run the CLI and return it with the argv of every host command it ran."""
        self.sim.clear_commands()
        proc = self.cli(*args)
        return proc, self.sim.commands()

    def write_spec(self, stem: str, text: str, mode: int = 0o644) -> Path:
        path = self.conf_dir / f"{stem}.toml"
        path.write_text(text)
        path.chmod(mode)
        return path

    def ledger(self) -> Ledger:
        assert (self.state_dir / LEDGER_FILE).is_file()
        return load_ledger(self.state_dir)


def make_rig(tmp_path: Path) -> CliRig:
    """A fresh host (igb0, lo0, em0) whose daemon config puts igb0 in bridge0, as the Handbook
    does; state_dir and run_dir live on the simulated host's own file system."""
    sim = SimulatedHost(tmp_path / "host").setup()
    conf_dir = tmp_path / "conf.d"
    conf_dir.mkdir()
    conf_dir.chmod(0o755)
    state_dir = sim.root / "var/db/bhyve-reconciler"
    config = tmp_path / "bhyve-reconciler.toml"
    config.write_text(
        tomli_w.dumps(
            {
                "conf_dir": str(conf_dir),
                "state_dir": str(state_dir),
                "run_dir": str(sim.root / "var/run/bhyve-reconciler"),
                "bridges": {"bridge0": {"members": ["igb0"]}},
            }
        )
    )
    return CliRig(workdir=tmp_path, sim=sim, conf_dir=conf_dir, config=config, state_dir=state_dir)


def sparse_file(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.truncate(size)
