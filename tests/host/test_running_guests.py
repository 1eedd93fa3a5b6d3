"""`plan` and `apply` on a host where guests run (under the daemon, or started by vmrun.sh):
a VM with a live bhyve is never destroyed nor its guest started again; a VM whose bhyve is
gone is a stale one, destroyed so the guest can boot."""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Callable, Iterator

import pytest
from e2e_helpers import HANDBOOK_SPEC, OBSERVE, CliRig, stopped_guest

from reconciler.host.guests import guest_run_dir
from reconciler.processes import PS_ARGV

Boot = Callable[[list[str]], subprocess.Popen[str]]

RUNNING_HANDBOOK = HANDBOOK_SPEC.replace('state = "stopped"\n', "")


@pytest.fixture
def boot(rig: CliRig) -> Iterator[Boot]:
    """Boot a guest as vmrun.sh would from `commands` output: its loader line to the end, then
    its bhyve line in the background (bhyve refuses a VM no loader set up: bhyverun.c). Whatever
    still runs is killed afterwards."""
    started: list[subprocess.Popen[str]] = []

    def start(lines: list[str]) -> subprocess.Popen[str]:
        *loader, bhyve = (shlex.split(line) for line in lines)
        for argv in loader:
            assert rig.sim.run(argv).returncode == 0, argv
        proc = subprocess.Popen(bhyve, env=rig.sim.env(), stdout=subprocess.DEVNULL, text=True)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def test_a_guest_started_behind_its_back_keeps_running_through_plan_and_apply(
    rig: CliRig, boot: Boot
) -> None:
    assert RUNNING_HANDBOOK != HANDBOOK_SPEC
    rig.write_spec("guestname", RUNNING_HANDBOOK)
    iso = rig.sim.path("/vm/iso/FreeBSD-14.0-RELEASE-amd64-bootonly.iso")
    iso.parent.mkdir(parents=True)
    iso.write_bytes(b"install media\n")
    assert rig.cli("apply").returncode == 0
    proc = boot(rig.cli("commands", "guestname").stdout.splitlines())
    pid = rig.sim.wait_for_bhyve("guestname")
    assert rig.sim.interfaces()["tap0"].opened_by == pid

    plan = rig.cli("plan")
    applied, ran = rig.logged("apply")

    assert (plan.returncode, plan.stdout) == (0, "converged: nothing to do\n"), plan.stdout
    assert applied.returncode == 0, applied.stdout
    assert ran == OBSERVE  # above all no `bhyvectl --vm=guestname --destroy`
    assert proc.poll() is None
    assert rig.sim.bhyve_pid("guestname") == pid
    assert "guestname" in rig.sim.vms()

    proc.kill()
    proc.wait(timeout=10)
    assert "guestname" in rig.sim.vms()  # what a killed bhyve leaves behind
    stale, ran = rig.logged("apply")

    assert stale.returncode == 0, stale.stdout
    # Destroyed only once the process listing shows no bhyve runs it.
    assert ran == [*OBSERVE, list(PS_ARGV), ["bhyvectl", "--vm=guestname", "--destroy"]]
    assert "guestname" not in rig.sim.vms()


def test_a_guest_the_daemon_recorded_as_running_is_left_alone(rig: CliRig, boot: Boot) -> None:
    # No NIC, so only the daemon's boot record in run_dir tells that its bhyve runs.
    running = stopped_guest("quiet", "/vm/quiet.img", size="1G").replace('state = "stopped"\n', "")
    rig.write_spec("quiet", running)
    assert rig.cli("apply").returncode == 0
    proc = boot(rig.cli("commands", "quiet").stdout.splitlines())
    pid = rig.sim.wait_for_bhyve("quiet")
    record = guest_run_dir(rig.sim.root / "var/run/bhyve-reconciler", "quiet")
    record.mkdir(parents=True)
    (record / "bhyve.pid").write_text(f"{pid}\n")

    plan = rig.cli("plan")
    applied, ran = rig.logged("apply")

    assert (plan.returncode, plan.stdout) == (0, "converged: nothing to do\n"), plan.stdout
    assert applied.returncode == 0, applied.stdout
    assert ran == [*OBSERVE, list(PS_ARGV)]
    assert proc.poll() is None
    assert "quiet" in rig.sim.vms()
