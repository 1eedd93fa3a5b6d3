"""FreeBSDHost.observe returns what it could observe: one failed command (or listing, or stat)
leaves its field None and says why, and every other observation is still taken."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from reconciler.facts import HostFacts, Observation
from reconciler.host.freebsd import FreeBSDHost
from reconciler.host.runner import DEFAULT_TIMEOUT, Result
from reconciler.ledger import Ledger
from reconciler.spec import Disk, GuestSpec

KLDSTAT = """Id Refs Address                Size Name
 5    1 0xffffffff83200000   340438 vmm.ko (/boot/kernel/vmm.ko)
\tContains modules:
\t\t Id Name
\t\t543 vmm
"""
IFCONFIG = "tap0: flags=8943<UP,BROADCAST,RUNNING,PROMISC,SIMPLEX,MULTICAST> metric 0 mtu 1500\n"
OUTPUT = {
    "kldstat": KLDSTAT,
    "sysctl": "net.link.tap.up_on_open: 1\n",
    "ifconfig": IFCONFIG,
    "zfs": "zroot/vm/z\t17179869184\n",
}
ZVOL_GUEST = GuestSpec(name="z", disks=(Disk(zvol="zroot/vm/z", size=1 << 30),))


class FailingRunner:
    """Answers observation commands; the tool named in `fail` exits 1 with a message."""

    def __init__(self, fail: str | None = None, **output: str) -> None:
        self.fail = fail
        self.output = {**OUTPUT, **output}
        self.ran: list[str] = []

    def run(self, argv: Sequence[str], *, timeout: float = DEFAULT_TIMEOUT) -> Result:
        self.ran.append(argv[0])
        if argv[0] == self.fail:
            return Result(tuple(argv), 1, b"", f"{argv[0]}: simulated EIO\n".encode())
        return Result(tuple(argv), 0, self.output[argv[0]].encode(), b"")

    def spawn(self, argv: Sequence[str], *, output: Path | None = None) -> subprocess.Popen[bytes]:
        raise AssertionError("observation spawns nothing")


def observe(tmp_path: Path, runner: FailingRunner) -> HostFacts:
    (tmp_path / "dev/vmm").mkdir(parents=True, exist_ok=True)
    (tmp_path / "dev/vmm/web").touch()
    host = FreeBSDHost(runner, root=tmp_path)
    return host.observe({"z": ZVOL_GUEST}, Ledger())


def test_every_observation_taken_when_all_succeed(tmp_path: Path) -> None:
    facts = observe(tmp_path, FailingRunner())
    assert facts.unobserved == {}
    assert facts.modules is not None and "vmm" in facts.modules
    assert facts.interfaces is not None and "tap0" in facts.interfaces
    assert facts.zvols == {"zroot/vm/z": 16 << 30}
    assert facts.vms == frozenset({"web"})


@pytest.mark.parametrize(
    ("tool", "fact", "argv"),
    [
        ("kldstat", "modules", "kldstat -v"),
        ("ifconfig", "interfaces", "ifconfig -a"),
        ("zfs", "zvols", "zfs list -H -p -t volume -o name,volsize"),
    ],
)
def test_one_failed_command_leaves_only_its_fact_unobserved(
    tmp_path: Path, tool: str, fact: Observation, argv: str
) -> None:
    runner = FailingRunner(fail=tool)
    facts = observe(tmp_path, runner)
    assert runner.ran == ["kldstat", "sysctl", "ifconfig", "zfs"]  # the others still ran
    assert getattr(facts, fact) is None
    assert list(facts.unobserved) == [fact]
    assert facts.unobserved[fact] == f"{argv}: exit status 1: {tool}: simulated EIO"
    observed = {"modules", "interfaces", "zvols", "vms"} - {fact}
    assert all(getattr(facts, name) for name in observed)
    assert facts.sysctls == {"net.link.tap.up_on_open": "1"}


def test_zfs_output_without_byte_counts_is_unobserved_not_guessed(tmp_path: Path) -> None:
    runner = FailingRunner(zfs="zroot/vm/z\t16G\n")  # made without -p
    facts = observe(tmp_path, runner)
    assert facts.zvols is None
    assert "not a byte count" in facts.unobserved["zvols"]


def test_a_failed_sysctl_read_is_an_unset_value_not_a_failure(tmp_path: Path) -> None:
    facts = observe(tmp_path, FailingRunner(fail="sysctl"))
    assert facts.sysctls == {}
    assert facts.unobserved == {}


def test_an_unreadable_vmm_dir_leaves_vms_unobserved(tmp_path: Path) -> None:
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev/vmm").write_text("not a directory")
    host = FreeBSDHost(FailingRunner(), root=tmp_path)
    facts = host.observe({}, Ledger())
    assert facts.vms is None
    assert facts.unobserved["vms"].startswith("/dev/vmm: ")
    assert facts.modules is not None and facts.interfaces is not None


def test_a_failed_disk_stat_leaves_that_disk_unobserved(tmp_path: Path) -> None:
    (tmp_path / "vm").write_text("a file where a directory should be")
    (tmp_path / "ok").mkdir()
    (tmp_path / "ok/b.img").write_bytes(b"\0" * 512)
    guests = {
        "a": GuestSpec(name="a", disks=(Disk(path="/vm/a.img", size=1 << 30),)),
        "b": GuestSpec(name="b", disks=(Disk(path="/ok/b.img", size=1 << 30),)),
        "c": GuestSpec(name="c", disks=(Disk(path="/ok/c.img", size=1 << 30),)),
    }
    facts = FreeBSDHost(FailingRunner(), root=tmp_path).observe(guests, Ledger())
    assert "/vm/a.img" not in facts.disks
    assert facts.unobserved["disks"].startswith("/vm/a.img: ")
    assert facts.disks["/ok/b.img"].exists and not facts.disks["/ok/c.img"].exists
