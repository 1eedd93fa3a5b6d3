"""Simulated bhyve before it becomes a guest: usage, memory, the VM it needs, its devices, each
failure with bhyve's own message and exit status, and the release differences."""

from __future__ import annotations

import pytest
from sim_helpers import GUEST, HANDBOOK_ARGV, LOAD_ARGV, Boot, Run, fails, wait_running

from reconciler.sim import SimulatedHost

FIRMWARE = "/usr/local/share/uefi-firmware/BHYVE_UEFI.fd"
DEVICE_ERROR = "Device emulation initialization error: No such file or directory\n"


@pytest.mark.parametrize(
    ("release", "status", "stderr", "created"),
    [
        ("13.4-RELEASE", 4, "virtual machine cannot be booted\n", True),
        ("14.1-RELEASE", 4, "virtual machine cannot be booted\n", True),
        ("15.0-CURRENT", 4, "bhyve: no bootrom was configured\n", False),
    ],
)
def test_without_a_loader_or_bootrom_there_is_nothing_to_boot(
    ready: SimulatedHost, boot: Boot, release: str, status: int, stderr: str, created: bool
) -> None:
    ready.set_release(release)
    assert fails(boot(*HANDBOOK_ARGV)) == (status, stderr)
    # 13.x/14.x created the VM before finding it cannot boot it, and leave it behind.
    assert (GUEST in ready.vms()) is created


def test_vm_creation_loads_vmm(host: SimulatedHost, boot: Boot) -> None:
    assert "vmm" not in host.modules()
    status, _ = fails(boot("-s", "0:0,hostbridge", GUEST))
    assert status == 4
    assert "vmm" in host.modules()  # libvmmapi vm_create() kldloads vmm itself


@pytest.mark.parametrize(
    ("argv", "status", "stderr_start"),
    [
        (("-Q", GUEST), 1, "bhyve: illegal option -- Q\nUsage: bhyve "),
        ((), 1, "Usage: bhyve "),
        (("one", "two"), 1, "Usage: bhyve "),
        (("-h",), 0, "Usage: bhyve "),
        (("-m", "lots", GUEST), 64, "bhyve: invalid memsize 'lots'\n"),
    ],
)
def test_usage_and_memsize(
    ready: SimulatedHost, boot: Boot, argv: tuple[str, ...], status: int, stderr_start: str
) -> None:
    code, stderr = fails(boot(*argv))
    assert code == status
    assert stderr.startswith(stderr_start)


def test_memory_must_match_the_loaders(ready: SimulatedHost, boot: Boot, tool: Run) -> None:
    assert tool(*LOAD_ARGV).returncode == 0
    argv = list(HANDBOOK_ARGV)
    argv[argv.index("1024M")] = "512M"
    assert fails(boot(*argv)) == (4, "Unable to setup memory (22)\n")


def test_a_second_bhyve_for_a_running_guest_fails(
    ready: SimulatedHost, boot: Boot, tool: Run
) -> None:
    assert tool(*LOAD_ARGV).returncode == 0
    first = boot(*HANDBOOK_ARGV)
    wait_running(ready, first, GUEST)
    # Its tap is held: PCI set-up fails first.
    assert fails(boot(*HANDBOOK_ARGV)) == (
        4,
        "open of tap device /dev/tap0 failed\nDevice emulation initialization error: Device busy\n",
    )
    # Without a tap it gets as far as the boot vCPU, which is already active.
    argv = ("-m", "1024M", "-s", "0:0,hostbridge", GUEST)
    assert fails(boot(*argv)) == (71, "bhyve: could not activate CPU 0: Device busy\n")
    assert first.poll() is None
    assert ready.boots(GUEST) == 1


def test_another_guest_cannot_open_a_tap_in_use(
    ready: SimulatedHost, boot: Boot, tool: Run
) -> None:
    assert tool(*LOAD_ARGV).returncode == 0
    wait_running(ready, boot(*HANDBOOK_ARGV), GUEST)
    assert tool("bhyveload", "-m", "256M", "other").returncode == 0
    status, stderr = fails(boot("-s", "2:0,virtio-net,tap0", "other"))
    assert (status, stderr.splitlines()[0]) == (4, "open of tap device /dev/tap0 failed")


@pytest.mark.parametrize(
    ("device", "stderr"),
    [
        (
            "3:0,virtio-blk,/vm/other.img",
            "bhyve: Could not open backing file: /vm/other.img: No such file or directory\n"
            "Could not open backing file: No such file or directory\n" + DEVICE_ERROR,
        ),
        (
            "31:0,ahci-cd,/x.iso",
            "bhyve: Could not open backing file: /x.iso: No such file or directory\n"
            + DEVICE_ERROR,
        ),
    ],
)
def test_bhyve_needs_its_disks_and_iso(
    ready: SimulatedHost, boot: Boot, tool: Run, device: str, stderr: str
) -> None:
    assert tool("bhyveload", "-m", "256M", GUEST).returncode == 0
    assert fails(boot("-s", "0:0,hostbridge", "-s", device, GUEST)) == (4, stderr)


def test_13_perrors_the_device_failure(ready: SimulatedHost, boot: Boot, tool: Run) -> None:
    ready.set_release("13.4-RELEASE")
    assert tool("bhyveload", "-m", "256M", GUEST).returncode == 0
    _, stderr = fails(boot("-s", "3:0,virtio-blk,/vm/none.img", GUEST))
    assert stderr.endswith("\ndevice emulation initialization error: No such file or directory\n")


def test_bhyve_needs_its_firmware(ready: SimulatedHost, boot: Boot) -> None:
    lpc = ("-s", "0:0,hostbridge", "-s", "31,lpc")
    assert fails(boot(*lpc, "-l", "bootrom,/fw.fd", GUEST)) == (
        4,
        'Error opening bootrom "/fw.fd": No such file or directory\n' + DEVICE_ERROR,
    )
    assert fails(boot(*lpc, "-l", f"bootrom,{FIRMWARE},/vm/vars.fd", GUEST)) == (
        4,
        'Error opening bootrom variable file "/vm/vars.fd": No such file or directory\n'
        + DEVICE_ERROR,
    )


def test_a_uefi_guest_needs_no_loader_and_reboots_without_one(
    ready: SimulatedHost, boot: Boot
) -> None:
    argv = ("-m", "1G", "-s", "0:0,hostbridge", "-s", "31,lpc", "-l", f"bootrom,{FIRMWARE}", "uefi")
    for _ in range(2):
        process = boot(*argv)
        wait_running(ready, process, "uefi")
        ready.guest_do("uefi", "reboot")
        assert process.wait(timeout=10) == 0  # a bootrom boot vm_reinit()s the VM itself
    assert ready.vm_memory("uefi") == 1 << 30


def test_nmdm_console_needs_nmdm(ready: SimulatedHost, boot: Boot, tool: Run) -> None:
    argv = ("-s", "0:0,hostbridge", "-s", "1:0,lpc", "-l", "com1,/dev/nmdm-guestname.1A", GUEST)
    assert tool("bhyveload", "-m", "256M", GUEST).returncode == 0
    assert fails(boot(*argv)) == (
        4,
        "Unable to initialize backend '/dev/nmdm-guestname.1A' for LPC device com1\n"
        + DEVICE_ERROR,
    )
    tool("kldload", "nmdm")
    wait_running(ready, boot(*argv), GUEST)


def test_a_vm_suspended_before_its_bhyve_runs_exits_at_once(
    ready: SimulatedHost, boot: Boot, tool: Run
) -> None:
    assert tool(*LOAD_ARGV).returncode == 0
    assert tool("bhyvectl", f"--vm={GUEST}", "--force-poweroff").returncode == 0
    assert fails(boot(*HANDBOOK_ARGV)) == (1, "")
    assert ready.boots(GUEST) == 1


def test_uefi_memory_must_fit_in_the_host(ready: SimulatedHost, boot: Boot) -> None:
    ready.set_physmem(1 << 30)
    argv = ("-m", "2G", "-s", "31,lpc", "-l", f"bootrom,{FIRMWARE}", "big")
    assert fails(boot(*argv)) == (4, "Unable to setup memory (12)\n")
