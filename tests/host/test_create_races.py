"""Something else creates what a pass is about to create, between the pass's observation and
its action (another tool, a concurrent `apply`): FreeBSD's answer counts as "already so", the
rest of the pass goes on, and what the reconciler did not create never enters its ledger.

The race is real: a Runner wrapper runs the other party's command on the simulated host just
before the driver's own command runs.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from reconciler.actions import AddMember, CreateInterface, CreateZvol
from reconciler.config import DaemonConfig
from reconciler.converge import Converger, PassResult
from reconciler.guestfile import parse_guest_text
from reconciler.host.freebsd import FreeBSDHost
from reconciler.host.runner import DEFAULT_TIMEOUT, Result, SubprocessRunner
from reconciler.ledger import Ledger
from reconciler.sim import SimulatedHost
from reconciler.spec import GuestSpec

NIC_GUEST = """\
name = "web"
[[disk]]
path = "/vm/web.img"
size = "1G"
[[nic]]
tap = "tap0"
bridge = "bridge0"
"""
ZVOL_GUEST = """\
name = "db"
[[disk]]
zvol = "zroot/vm/db"
size = "1G"
"""
TAP0_CREATE = ["ifconfig", "tap0", "create"]
BRIDGE0_CREATE = ["ifconfig", "bridge0", "create"]

# When the driver is about to run a command this matches, the other party's command runs first.
Race = tuple[Callable[[tuple[str, ...]], bool], list[str]]


def before(argv: Sequence[str], other: list[str]) -> Race:
    return (lambda ran: ran == tuple(argv)), other


def before_creating(dataset: str, other: list[str]) -> Race:
    """Before whichever `zfs create` the driver runs to create `dataset` itself."""
    return (lambda ran: ran[:2] == ("zfs", "create") and ran[-1] == dataset), other


class RacingRunner:
    """The production runner, with each race's other party run once, behind its back."""

    def __init__(self, sim: SimulatedHost, races: Sequence[Race]) -> None:
        self.inner = SubprocessRunner(sim.env())
        self.sim = sim
        self.races = list(races)
        self.ran: list[tuple[str, ...]] = []

    def run(self, argv: Sequence[str], *, timeout: float = DEFAULT_TIMEOUT) -> Result:
        self.ran.append(tuple(argv))
        for race in list(self.races):
            matches, other = race
            if matches(tuple(argv)):
                self.races.remove(race)
                done = self.sim.run(other)
                assert done.returncode == 0, done.stderr
        return self.inner.run(argv, timeout=timeout)

    def spawn(self, argv: Sequence[str], *, output: Path | None = None) -> subprocess.Popen[bytes]:
        return self.inner.spawn(argv, output=output)


@pytest.fixture
def sim(tmp_path: Path) -> SimulatedHost:
    return SimulatedHost(tmp_path / "host").setup()


def converge_once(
    sim: SimulatedHost, text: str, races: Sequence[Race]
) -> tuple[PassResult, Ledger, RacingRunner]:
    spec, errors = parse_guest_text(text, file="/conf.d/g.toml", stem="g")
    assert spec is not None, errors
    config = replace(
        DaemonConfig(),
        conf_dir=sim.root / "conf.d",
        state_dir=sim.root / "var/db/bhyve-reconciler",
        run_dir=sim.root / "var/run/bhyve-reconciler",
        bridges={"bridge0": ("igb0",)},
    )
    config.state_dir.mkdir(parents=True)
    runner = RacingRunner(sim, races)
    host = FreeBSDHost(runner, root=sim.root, vmm_dir=config.vmm_dir)
    converger = Converger(host, config, Ledger())
    desired: dict[str, GuestSpec] = {spec.name: spec}
    result = converger.converge(desired, frozenset())
    return result, converger.ledger, runner


def outcome_of(result: PassResult, kind: type, **fields: object) -> str:
    for outcome in result.outcomes:
        action = outcome.action
        if isinstance(action, kind) and all(getattr(action, k) == v for k, v in fields.items()):
            return outcome.status
    raise AssertionError(f"no {kind.__name__} {fields} in {result.outcomes}")


@pytest.mark.parametrize("release", ["13.4-RELEASE", "14.2-RELEASE", "15.0-CURRENT"])
def test_a_tap_created_by_someone_else_before_our_create_is_not_ours(
    sim: SimulatedHost, release: str
) -> None:
    sim.set_release(release)
    result, ledger, runner = converge_once(sim, NIC_GUEST, [before(TAP0_CREATE, TAP0_CREATE)])
    assert not runner.races, "the race never ran"
    assert outcome_of(result, CreateInterface, name="tap0") == "unchanged"
    assert outcome_of(result, AddMember, bridge="bridge0", member="tap0") == "done"
    assert result.blocked == frozenset()
    assert not result.errors
    assert "tap0" not in ledger.interfaces
    assert ledger.members.get(("bridge0", "tap0")) == "web"
    assert sim.interfaces()["bridge0"].members == ("tap0", "igb0")


def test_a_bridge_created_by_someone_else_before_our_create_is_not_ours(
    sim: SimulatedHost,
) -> None:
    result, ledger, _ = converge_once(sim, NIC_GUEST, [before(BRIDGE0_CREATE, BRIDGE0_CREATE)])
    assert outcome_of(result, CreateInterface, name="bridge0") == "unchanged"
    assert result.blocked == frozenset() and not result.errors
    assert "bridge0" not in ledger.interfaces
    assert "tap0" in ledger.interfaces


def test_the_ioctls_own_answer_to_a_race_is_already_so_too(sim: SimulatedHost) -> None:
    # Between main()'s look-up of the name and SIOCIFCREATE2, the kernel answers EEXIST and
    # ifclone.c says err(1, "SIOCIFCREATE2"): the text older releases print for every case.
    sim.inject_fault("ifconfig tap0 create", stderr="ifconfig: SIOCIFCREATE2: File exists")
    result, ledger, _ = converge_once(sim, NIC_GUEST, [before(TAP0_CREATE, TAP0_CREATE)])
    assert outcome_of(result, CreateInterface, name="tap0") == "unchanged"
    assert result.blocked == frozenset() and not result.errors
    assert "tap0" not in ledger.interfaces


def test_another_failure_to_create_still_fails(sim: SimulatedHost) -> None:
    sim.inject_fault("ifconfig tap0 create", stderr="ifconfig: SIOCIFCREATE2: Invalid argument")
    result, ledger, _ = converge_once(sim, NIC_GUEST, [])
    assert outcome_of(result, CreateInterface, name="tap0") == "failed"
    assert outcome_of(result, AddMember, bridge="bridge0", member="tap0") == "skipped"
    assert "web" in result.blocked
    assert "tap0" not in ledger.interfaces


def test_a_zvol_created_by_someone_else_before_our_create_is_not_ours(sim: SimulatedHost) -> None:
    # OpenZFS zfs_do_create(): with -p an existing dataset is no error, so only a create
    # without -p can tell the reconciler that it did not make the volume (reference §8.4).
    other = ["zfs", "create", "-p", "-V", "1G", "zroot/vm/db"]
    result, ledger, runner = converge_once(sim, ZVOL_GUEST, [before_creating("zroot/vm/db", other)])
    assert not runner.races, "the race never ran"
    assert outcome_of(result, CreateZvol, zvol="zroot/vm/db") == "unchanged"
    assert result.blocked == frozenset() and not result.errors
    assert "/dev/zvol/zroot/vm/db" not in ledger.disks
    assert sim.zvols() == {"zroot/vm/db": 1 << 30}


def test_a_zvol_we_create_is_ours_and_its_parents_are_made_first(sim: SimulatedHost) -> None:
    result, ledger, runner = converge_once(sim, ZVOL_GUEST, [])
    assert outcome_of(result, CreateZvol, zvol="zroot/vm/db") == "done"
    assert ledger.disks == {"/dev/zvol/zroot/vm/db": "db"}
    assert sim.datasets()["zroot/vm"] == "filesystem"
    creates = [argv for argv in runner.ran if argv[:2] == ("zfs", "create")]
    assert creates == [
        ("zfs", "create", "-p", "zroot/vm"),
        ("zfs", "create", "-V", "1G", "-o", "volmode=dev", "zroot/vm/db"),
    ]
