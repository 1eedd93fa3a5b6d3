"""GuestSupervisor + the real GuestOps against the simulated host: real shims, real simulated
bhyve processes, real signals; bhyvectl and the loaders are the simulated FreeBSD tools."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import structlog
from supervise_support import wait_for

from reconciler.bhyve import BootCommands, boot_commands
from reconciler.guestphase import State
from reconciler.host.guests import ShimGuestOps, list_processes
from reconciler.host.runner import SubprocessRunner
from reconciler.settings import Timings
from reconciler.sim import SimulatedHost
from reconciler.spec import Disk, GuestSpec, Nic
from reconciler.supervise import GuestSupervisor

NAME = "vm1"
DISK = "/vm/vm1.img"
STOP_TIMEOUT = 0.5


@pytest.fixture
def host(tmp_path: Path) -> SimulatedHost:
    host = SimulatedHost(tmp_path / "host").setup()
    for module in ("vmm", "nmdm"):
        assert host.run(["kldload", module]).returncode == 0
    disk = host.path(DISK)
    disk.parent.mkdir(parents=True)
    disk.write_bytes(b"\0" * 510 + b"\x55\xaa")
    return host


def spec() -> GuestSpec:
    return GuestSpec(name=NAME, disks=(Disk(path=DISK),), nics=(Nic(tap="tap0"),))


class Daemon:
    """What the daemon does for one guest: a supervisor over the real ops, polled."""

    def __init__(self, host: SimulatedHost, run_dir: Path, guest: GuestSpec | None) -> None:
        runner = SubprocessRunner(env=host.env())
        self.ops = ShimGuestOps(
            NAME,
            runner=runner,
            run_dir=run_dir,
            vmm_dir=host.vmm_dir,
            processes=lambda: list_processes(runner),
        )
        self.sup = GuestSupervisor(
            NAME,
            spec=guest,
            ops=self.ops,
            prepare_boot=self.prepare,
            clock=time.monotonic,
            log=structlog.get_logger(),
            stop_timeout=STOP_TIMEOUT,
            timings=Timings(kill_grace=STOP_TIMEOUT),
        )

    @staticmethod
    def prepare(guest: GuestSpec) -> BootCommands:
        return boot_commands(guest, taps=["tap0"], install=False, guest_dir="/var/db/g/vm1")

    def settled(self) -> bool:
        return self.sup.settled

    def state(self) -> State:
        """The supervisor's state now (a call: mypy does not keep a narrowed property)."""
        return self.sup.state

    def until(self, predicate: Callable[[], bool], what: str) -> None:
        def polled() -> bool:
            self.sup.poll()
            return predicate()

        wait_for(polled, what)


@pytest.fixture
def daemons(host: SimulatedHost, tmp_path: Path) -> Iterator[list[Daemon]]:
    made: list[Daemon] = []
    yield made
    for daemon in made:  # leave no simulated guest behind
        if not daemon.sup.settled:
            daemon.sup.shutdown()
            daemon.until(daemon.settled, "the guest to stop")
    assert host.bhyve_pid(NAME) is None


def start_daemon(
    daemons: list[Daemon], host: SimulatedHost, tmp_path: Path, guest: GuestSpec | None
) -> Daemon:
    daemon = Daemon(host, tmp_path / "run", guest)
    daemons.append(daemon)
    return daemon


def boot_commands_run(host: SimulatedHost) -> list[str]:
    """The loader, bhyve and bhyvectl commands the host saw, as `tool [flag]`."""
    seen = []
    for argv in host.commands():
        if argv[0] in ("bhyveload", "bhyve"):
            seen.append(argv[0])
        elif argv[0] == "bhyvectl":
            seen.append(f"bhyvectl {argv[-1]}")
    return seen


def test_boot_then_guest_reboot_runs_loader_and_bhyve_again_keeping_the_vm(
    host: SimulatedHost, tmp_path: Path, daemons: list[Daemon]
) -> None:
    d = start_daemon(daemons, host, tmp_path, spec())
    d.until(lambda: d.state() == "running", "the guest to run")
    host.wait_for_bhyve(NAME)  # the simulated guest is up (ACPI enabled)
    first = d.sup.snapshot().pid
    assert first == host.bhyve_pid(NAME)
    host.guest_do(NAME, "reboot")
    d.until(lambda: d.sup.snapshot().boots == 2 and d.state() == "running", "the reboot")
    host.wait_for_bhyve(NAME)
    assert d.sup.snapshot().pid == host.bhyve_pid(NAME) != first
    assert boot_commands_run(host) == ["bhyveload", "bhyve", "bhyveload", "bhyve"]
    assert NAME in host.vms()
    assert d.sup.snapshot().last_exit_meaning == "reboot"


def test_guest_ignoring_acpi_is_forced_off_after_stop_timeout(
    host: SimulatedHost, tmp_path: Path, daemons: list[Daemon]
) -> None:
    host.set_acpi(NAME, honour=False)
    d = start_daemon(daemons, host, tmp_path, spec())
    d.until(lambda: d.state() == "running", "the guest to run")
    host.wait_for_bhyve(NAME)  # the simulated guest is up (ACPI enabled)
    d.sup.stop()
    assert d.state() == "stopping"
    d.until(lambda: d.sup.settled, "the stop to end")
    assert d.state() == "held"
    assert boot_commands_run(host)[-2:] == ["bhyvectl --force-poweroff", "bhyvectl --destroy"]
    assert host.bhyve_pid(NAME) is None
    assert NAME not in host.vms()


def test_power_off_destroys_the_vm_and_stays_off(
    host: SimulatedHost, tmp_path: Path, daemons: list[Daemon]
) -> None:
    d = start_daemon(daemons, host, tmp_path, spec())
    d.until(lambda: d.state() == "running", "the guest to run")
    host.wait_for_bhyve(NAME)  # the simulated guest is up (ACPI enabled)
    host.guest_do(NAME, "poweroff")
    d.until(lambda: d.state() == "powered-off", "powered-off")
    assert NAME not in host.vms()
    assert boot_commands_run(host) == ["bhyveload", "bhyve", "bhyvectl --destroy"]


def test_new_daemon_adopts_the_running_guest_and_acts_on_its_later_exit(
    host: SimulatedHost, tmp_path: Path, daemons: list[Daemon]
) -> None:
    first = start_daemon(daemons, host, tmp_path, spec())
    first.until(lambda: first.state() == "running", "the guest to run")
    host.wait_for_bhyve(NAME)
    pid = first.sup.snapshot().pid
    daemons.remove(first)  # the daemon "dies": nothing stops its guest
    second = start_daemon(daemons, host, tmp_path, spec())
    second.sup.poll()
    assert (second.state(), second.sup.snapshot().pid) == ("running", pid)
    assert host.boots(NAME) == 1
    host.guest_do(NAME, "fail")
    second.until(lambda: second.state() == "crash-loop", "the crash to be seen")
    assert second.sup.snapshot().last_exit_meaning == "error"
    assert NAME not in host.vms()


def test_exit_while_no_daemon_ran_is_acted_on_by_the_next(
    host: SimulatedHost, tmp_path: Path, daemons: list[Daemon]
) -> None:
    first = start_daemon(daemons, host, tmp_path, spec())
    first.until(lambda: first.state() == "running", "the guest to run")
    host.wait_for_bhyve(NAME)
    daemons.remove(first)
    host.guest_do(NAME, "reboot")
    wait_for(lambda: first.ops.record().exit is not None, "the shim to record the reboot")
    second = start_daemon(daemons, host, tmp_path, spec())
    second.until(lambda: second.state() == "running", "the guest to boot again")
    host.wait_for_bhyve(NAME)
    assert host.boots(NAME) == 2
    assert boot_commands_run(host) == ["bhyveload", "bhyve", "bhyveload", "bhyve"]


def test_loader_quit_counts_as_the_guest_stopping(
    host: SimulatedHost, tmp_path: Path, daemons: list[Daemon]
) -> None:
    host.set_loader_exit(NAME, 1)
    d = start_daemon(daemons, host, tmp_path, spec())
    d.until(lambda: d.sup.settled and d.sup.snapshot().boots == 1, "the loader to quit")
    assert d.state() == "powered-off"
    assert d.sup.snapshot().last_exit_meaning == "loader-quit"
    assert "bhyve" not in boot_commands_run(host)
