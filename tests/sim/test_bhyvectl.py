"""Simulated bhyvectl: a VM it cannot open is stderr and 1; a failing ioctl after that is
`errno = N` on stdout and 255 (reference §8.8)."""

from __future__ import annotations

import pytest
from sim_helpers import GUEST, HANDBOOK_ARGV, LOAD_ARGV, Boot, Run, wait_running

from reconciler.sim import SimulatedHost


@pytest.mark.parametrize("action", ["--destroy", "--force-poweroff", "--force-reset"])
def test_a_missing_vm(ready: SimulatedHost, tool: Run, action: str) -> None:
    result = tool("bhyvectl", "--vm=ghost", action)
    assert (result.returncode, result.stdout, result.stderr) == (
        1,
        "",
        "vm_open: ghost could not be opened: No such file or directory\n",
    )


def test_usage(ready: SimulatedHost, tool: Run) -> None:
    for argv in (("--destroy",), ("--vm=g", "--explode")):
        result = tool("bhyvectl", *argv)
        assert result.returncode == 1
        assert result.stderr.startswith("Usage: bhyvectl --vm=<vmname>\n")


def test_create_and_create_again(host: SimulatedHost, tool: Run) -> None:
    assert tool("bhyvectl", "--vm=ghost", "--create").returncode == 0
    assert host.vms() == {"ghost"}
    assert "vmm" in host.modules()  # vm_create() loaded it
    again = tool("bhyvectl", "--vm=ghost", "--create")
    assert (again.returncode, again.stdout, again.stderr) == (255, "errno = 17\n", "")


def test_force_poweroff_of_a_vm_that_already_powered_off(
    ready: SimulatedHost, boot: Boot, tool: Run
) -> None:
    assert tool(*LOAD_ARGV).returncode == 0
    process = boot(*HANDBOOK_ARGV)
    wait_running(ready, process, GUEST)
    ready.guest_do(GUEST, "poweroff")
    assert process.wait(timeout=10) == 1
    # vm_suspend(): EALREADY; the --destroy given with it is skipped.
    forced = tool("bhyvectl", f"--vm={GUEST}", "--force-poweroff", "--destroy")
    assert (forced.returncode, forced.stdout, forced.stderr) == (255, "errno = 37\n", "")
    assert GUEST in ready.vms()
    assert tool("bhyvectl", f"--vm={GUEST}", "--destroy").returncode == 0
    assert ready.vms() == frozenset()


def test_force_poweroff_of_a_loaded_vm_with_no_bhyve_succeeds_once(
    ready: SimulatedHost, tool: Run
) -> None:
    assert tool(*LOAD_ARGV).returncode == 0
    assert tool("bhyvectl", f"--vm={GUEST}", "--force-poweroff").returncode == 0
    assert tool("bhyvectl", f"--vm={GUEST}", "--force-reset").stdout == "errno = 37\n"
    # A loader's vm_reinit() clears the suspension.
    assert tool(*LOAD_ARGV).returncode == 0
    assert tool("bhyvectl", f"--vm={GUEST}", "--force-reset").returncode == 0


def test_get_stats(ready: SimulatedHost, tool: Run) -> None:
    assert tool(*LOAD_ARGV).returncode == 0
    stats = tool("bhyvectl", f"--vm={GUEST}", "--get-stats").stdout.splitlines()
    assert stats[0] == "vcpu0 stats:"
    assert stats[1].split("\t") == ["number of times in/out was intercepted  ", "0"]
