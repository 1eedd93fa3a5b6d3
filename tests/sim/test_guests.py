"""Simulated bhyve, bhyvectl and the loaders: real processes, real signals, bhyve's exit
statuses, /dev/vmm entries that outlive bhyve, and taps opened by the guest."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
from sim_tools import Boot, Run

from reconciler.facts import parse_ifconfig
from reconciler.sim import SimulatedHost
from reconciler.sim.host import CommandRecord

GUEST = "guestname"
DISK = "/vm/guest.img"
# The Handbook's disk-boot command line as vmrun.sh builds it (reference §2.6).
HANDBOOK_ARGV = (
    "-c", "4", "-m", "1024M", "-H", "-A", "-P",
    "-s", "0:0,hostbridge", "-s", "1:0,lpc",
    "-s", "2:0,virtio-net,tap0", "-s", f"3:0,virtio-blk,{DISK}",
    "-l", "com1,stdio", GUEST,
)  # fmt: skip


@pytest.fixture
def ready(host: SimulatedHost, tool: Run) -> SimulatedHost:
    """vmm loaded and the Handbook guest's disk present."""
    assert tool("kldload", "vmm").returncode == 0
    disk = host.path(DISK)
    disk.parent.mkdir(parents=True)
    with open(disk, "wb") as f:
        f.truncate(16 << 30)
    return host


def running(host: SimulatedHost, boot: Boot, *argv: str) -> tuple[subprocess.Popen[str], int]:
    process = boot(*(argv or HANDBOOK_ARGV))
    pid = host.wait_for_bhyve(argv[-1] if argv else GUEST)
    assert pid == process.pid  # bhyve.sh is exec'd: the pid the supervisor spawned
    return process, pid


@pytest.mark.parametrize(
    ("what", "status"),
    [("reboot", 0), ("poweroff", 1), ("halt", 2), ("triple-fault", 3), ("fail", 4)],
)
def test_guest_exits_with_bhyves_status(
    ready: SimulatedHost, boot: Boot, what: str, status: int
) -> None:
    process, _ = running(ready, boot)
    ready.guest_do(GUEST, what)
    assert process.wait(timeout=10) == status
    assert ready.bhyve_pid(GUEST) is None
    assert GUEST in ready.vms()  # the VM outlives bhyve until bhyvectl --destroy


def test_sigterm_is_the_acpi_power_button(ready: SimulatedHost, boot: Boot) -> None:
    process, pid = running(ready, boot)
    os.kill(pid, signal.SIGTERM)
    assert process.wait(timeout=10) == 1


def test_a_guest_ignoring_acpi_keeps_running_until_forced_off(
    ready: SimulatedHost, boot: Boot, tool: Run
) -> None:
    ready.set_acpi(GUEST, honour=False)
    process, pid = running(ready, boot)
    os.kill(pid, signal.SIGTERM)
    with pytest.raises(subprocess.TimeoutExpired):
        process.wait(timeout=0.3)
    assert ready.bhyve_pid(GUEST) == pid
    assert tool("bhyvectl", f"--vm={GUEST}", "--force-poweroff").returncode == 0
    assert process.wait(timeout=10) == 1


def test_sigkill_kills(ready: SimulatedHost, boot: Boot) -> None:
    process, pid = running(ready, boot)
    os.kill(pid, signal.SIGKILL)
    assert process.wait(timeout=10) == -signal.SIGKILL
    assert ready.bhyve_pid(GUEST) is None


def test_force_reset_is_a_reboot(ready: SimulatedHost, boot: Boot, tool: Run) -> None:
    process, _ = running(ready, boot)
    assert tool("bhyvectl", f"--vm={GUEST}", "--force-reset").returncode == 0
    assert process.wait(timeout=10) == 0


def test_destroy_under_a_running_bhyve_ends_it_and_the_vm(
    ready: SimulatedHost, boot: Boot, tool: Run
) -> None:
    process, _ = running(ready, boot)
    assert tool("bhyvectl", "--destroy", f"--vm={GUEST}").returncode == 0
    assert process.wait(timeout=10) == 4
    assert ready.vms() == frozenset()


def test_bhyvectl_on_a_missing_vm(ready: SimulatedHost, tool: Run) -> None:
    for action in ("--destroy", "--force-poweroff", "--force-reset"):
        result = tool("bhyvectl", "--vm=ghost", action)
        assert (result.returncode, result.stderr) == (
            1,
            "vm_open: ghost could not be opened: No such file or directory\n",
        )
    assert tool("bhyvectl", "--vm=ghost", "--create").returncode == 0
    assert ready.vms() == {"ghost"}
    assert tool("bhyvectl", "--vm=ghost", "--create").returncode == 1
    assert tool("bhyvectl", "--destroy").returncode == 1  # no --vm: usage


def test_tap_is_opened_by_the_guest_and_released_when_it_exits(
    ready: SimulatedHost, boot: Boot, tool: Run
) -> None:
    tool("ifconfig", "tap0", "create")
    tool("ifconfig", "bridge0", "create")
    tool("ifconfig", "bridge0", "addm", "tap0")
    assert ready.interfaces()["tap0"].up is False
    process, pid = running(ready, boot)
    shown = tool("ifconfig", "tap0").stdout
    assert f"\tOpened by PID {pid}\n" in shown
    tap = parse_ifconfig(tool("ifconfig", "-a").stdout)["tap0"]
    assert (tap.opened_by, tap.up) == (pid, True)  # bhyve 14 brings its tap up
    assert ready.interfaces()["tap0"] == tap
    ready.guest_do(GUEST, "poweroff")
    process.wait(timeout=10)
    assert "Opened by PID" not in tool("ifconfig", "tap0").stdout
    assert ready.interfaces()["bridge0"].members == ("tap0",)


def test_a_killed_guest_no_longer_holds_its_tap(ready: SimulatedHost, boot: Boot) -> None:
    process, pid = running(ready, boot)
    os.kill(pid, signal.SIGKILL)
    process.wait(timeout=10)
    assert ready.interfaces()["tap0"].opened_by is None


def test_a_missing_tap_is_cloned_unbridged(ready: SimulatedHost, boot: Boot) -> None:
    assert "tap0" not in ready.interfaces()
    _, pid = running(ready, boot)
    tap = ready.interfaces()["tap0"]
    assert (tap.kind, tap.opened_by) == ("tap", pid)
    assert all("tap0" not in i.members for i in ready.interfaces().values())


def test_boots_are_counted(ready: SimulatedHost, boot: Boot) -> None:
    assert ready.boots(GUEST) == 0
    for expected in (1, 2):
        process, _ = running(ready, boot)
        ready.guest_do(GUEST, "reboot")
        process.wait(timeout=10)
        assert ready.boots(GUEST) == expected


def test_a_second_bhyve_for_a_running_guest_fails(ready: SimulatedHost, boot: Boot) -> None:
    first, _ = running(ready, boot)
    second = boot(*HANDBOOK_ARGV)
    assert second.wait(timeout=10) == 4
    assert first.poll() is None
    assert ready.boots(GUEST) == 1


def test_another_guest_cannot_open_a_tap_in_use(ready: SimulatedHost, boot: Boot) -> None:
    running(ready, boot)
    other = boot("-s", "2:0,virtio-net,tap0", "other")
    assert other.wait(timeout=10) == 4
    assert other.stderr is not None
    assert "tap0" in other.stderr.read()


def _fails(boot: Boot, *argv: str) -> str:
    process = boot(*argv)
    assert process.wait(timeout=10) == 4
    assert process.stderr is not None
    return process.stderr.read()


def test_bhyve_needs_vmm(host: SimulatedHost, boot: Boot) -> None:
    assert _fails(boot, "-s", "0:0,hostbridge", GUEST) == "vm_create: No such file or directory\n"
    assert host.vms() == frozenset()


def test_bhyve_needs_its_disks_iso_and_firmware(ready: SimulatedHost, boot: Boot) -> None:
    assert "/vm/other.img" in _fails(boot, "-s", "3:0,virtio-blk,/vm/other.img", GUEST)
    assert "/x.iso" in _fails(boot, "-s", "31:0,ahci-cd,/x.iso", GUEST)
    assert "/fw.fd" in _fails(boot, "-l", "bootrom,/fw.fd", GUEST)
    firmware = "/usr/local/share/uefi-firmware/BHYVE_UEFI.fd"
    assert "bootvars" in _fails(boot, "-l", f"bootrom,{firmware},/vm/vars.fd", GUEST)
    assert ready.vms() == frozenset()


def test_uefi_guest_with_the_installed_firmware_boots(ready: SimulatedHost, boot: Boot) -> None:
    firmware = "/usr/local/share/uefi-firmware/BHYVE_UEFI.fd"
    running(ready, boot, "-s", f"3:0,nvme,{DISK}", "-l", f"bootrom,{firmware}", "uefi")
    assert "uefi" in ready.vms()


def test_nmdm_console_needs_nmdm(ready: SimulatedHost, boot: Boot, tool: Run) -> None:
    argv = ("-l", "com1,/dev/nmdm-guestname.1A", GUEST)
    assert "nmdm-guestname.1A" in _fails(boot, *argv)
    tool("kldload", "nmdm")
    running(ready, boot, *argv)


def test_bhyveload_creates_the_vm_and_checks_disks(ready: SimulatedHost, tool: Run) -> None:
    ok = tool(
        "bhyveload", "-c", "stdio", "-m", "1024M", "-e", "autoboot_delay=3", "-d", DISK, GUEST
    )
    assert ok.returncode == 0
    assert ready.vms() == {GUEST}
    missing = tool("bhyveload", "-m", "1024M", "-d", "/vm/none.img", "other")
    assert (missing.returncode, missing.stderr) == (
        64,
        "bhyveload: Could not open '/vm/none.img'\n",
    )
    assert "other" not in ready.vms()


def test_loaders_need_vmm(host: SimulatedHost, tool: Run) -> None:
    assert tool("bhyveload", "-m", "256M", GUEST).returncode == 1
    assert tool("grub-bhyve", "-M", "256M", GUEST).returncode == 1
    assert host.vms() == frozenset()


@pytest.mark.parametrize("status", [1, 2])
def test_loader_exit_is_used_once(ready: SimulatedHost, tool: Run, status: int) -> None:
    ready.set_loader_exit(GUEST, status)
    assert tool("bhyveload", "-m", "1024M", "-d", DISK, GUEST).returncode == status
    assert tool("bhyveload", "-m", "1024M", "-d", DISK, GUEST).returncode == 0
    ready.set_loader_exit(GUEST, status)
    assert tool("grub-bhyve", "-M", "1024M", GUEST).returncode == status


def test_grub_bhyve_reads_its_device_map(ready: SimulatedHost, tool: Run) -> None:
    device_map = ready.path("/vm/device.map")
    device_map.write_text(f"(hd0) {DISK}\n(cd0) /vm/linux.iso\n")
    argv = ("grub-bhyve", "-m", "/vm/device.map", "-r", "hd0,msdos1", "-M", "1024M", "linux")
    missing_iso = tool(*argv)
    assert missing_iso.returncode == 1
    assert "/vm/linux.iso" in missing_iso.stderr
    ready.path("/vm/linux.iso").write_bytes(b"")
    assert tool(*argv).returncode == 0
    assert "linux" in ready.vms()
    wrong_root = tool("grub-bhyve", "-m", "/vm/device.map", "-r", "hd1", "-M", "1G", "linux")
    assert wrong_root.returncode == 1


def test_guest_do_without_a_running_guest(ready: SimulatedHost) -> None:
    with pytest.raises(LookupError):
        ready.guest_do(GUEST, "reboot")
    with pytest.raises(ValueError, match="explode"):
        ready.guest_do(GUEST, "explode")


def test_a_guest_is_one_light_process(ready: SimulatedHost, boot: Boot) -> None:
    _, pid = running(ready, boot)
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if not children.exists():
        pytest.skip("needs Linux /proc")
    # No child (such as a sleep) that a SIGKILL would orphan.
    assert children.read_text().split() == []
    assert Path(f"/proc/{pid}/comm").read_text().strip() in ("sh", "dash")


def test_bhyve_is_logged_when_it_becomes_the_guest(ready: SimulatedHost, boot: Boot) -> None:
    ready.clear_commands()
    process, _ = running(ready, boot)
    assert ready.command_records() == [CommandRecord(("bhyve", *HANDBOOK_ARGV), None)]
    ready.guest_do(GUEST, "halt")
    assert process.wait(timeout=10) == 2
