"""Simulated bhyveload and grub-bhyve: their usage and device checks, the VM and memory they set
up, and their failures, each distinct in what it prints though all exit 1 (reference §8.3)."""

from __future__ import annotations

import pytest
from sim_helpers import DISK, GUEST, LOAD_ARGV, Run

from reconciler.sim import SimulatedHost

GRUB_TRY = "Try `grub-bhyve --help' or `grub-bhyve --usage' for more information.\n"


def test_bhyveload_creates_the_vm_and_sets_up_its_memory(ready: SimulatedHost, tool: Run) -> None:
    ok = tool(*LOAD_ARGV[:-1], "-e", "autoboot_delay=3", GUEST)
    assert (ok.returncode, ok.stdout, ok.stderr) == (0, "", "")
    assert ready.vms() == {GUEST}
    assert ready.vm_memory(GUEST) == 1 << 30


@pytest.mark.parametrize(
    ("argv", "status", "stderr"),
    [
        (("-m", "1G", "-d", "/vm/none.img", "x"), 64, "bhyveload: Could not open '/vm/none.img'\n"),
        (("-c", "/dev/nmdm0A", "x"), 64, "bhyveload: Could not open '/dev/nmdm0A'\n"),
        (("-m", "lots", "x"), 64, "bhyveload: Invalid memsize 'lots'\n"),
        (("-l", "/a.so", "-l", "/b.so", "x"), 64, "bhyveload: -l can only be given once\n"),
        (("-Q", "x"), 1, "bhyveload: illegal option -- Q\nusage: bhyveload "),
        (("a", "b"), 1, "usage: bhyveload "),
    ],
)
def test_bhyveload_refuses_what_it_cannot_use(
    ready: SimulatedHost, tool: Run, argv: tuple[str, ...], status: int, stderr: str
) -> None:
    result = tool("bhyveload", *argv)
    assert result.returncode == status
    assert result.stderr.startswith(stderr)
    assert ready.vms() == frozenset()


def test_loaders_load_vmm_themselves(host: SimulatedHost, tool: Run) -> None:
    assert tool("bhyveload", "-m", "256M", GUEST).returncode == 0
    assert tool("grub-bhyve", "-M", "256M", "linux").returncode == 0
    assert host.vms() == {GUEST, "linux"}
    assert "vmm" in host.modules()


def test_a_vm_keeps_its_memory_size(ready: SimulatedHost, tool: Run) -> None:
    assert tool(*LOAD_ARGV).returncode == 0
    other = tool("bhyveload", "-m", "2G", "-d", DISK, GUEST)
    assert (other.returncode, other.stderr) == (1, "vm_setup_memory: Invalid argument\n")
    grub = tool("grub-bhyve", "-M", "2G", GUEST)
    assert (grub.returncode, grub.stderr) == (
        1,
        "Could not setup memory for VM\nError in initializing VM\n",
    )


def test_memory_must_fit_in_the_host(ready: SimulatedHost, tool: Run) -> None:
    ready.set_physmem(3 << 30)
    assert tool("bhyveload", "-m", "2G", "first").returncode == 0
    short = tool("bhyveload", "-m", "2G", "second")
    assert (short.returncode, short.stdout, short.stderr) == (
        1,
        "",
        "vm_setup_memory: Cannot allocate memory\n",
    )
    assert ready.vm_memory("second") == 0  # created, but with no memory
    assert tool("bhyvectl", "--vm=first", "--destroy").returncode == 0
    assert tool("bhyveload", "-m", "2G", "second").returncode == 0


def test_the_next_loader_runs_fail_for_lack_of_memory(ready: SimulatedHost, tool: Run) -> None:
    ready.fail_loaders(2)
    first = tool(*LOAD_ARGV)
    assert (first.returncode, first.stderr) == (1, "vm_setup_memory: Cannot allocate memory\n")
    second = tool("grub-bhyve", "-M", "1024M", GUEST)
    assert (second.returncode, second.stderr) == (
        1,
        "Could not setup memory for VM\nError in initializing VM\n",
    )
    assert tool(*LOAD_ARGV).returncode == 0


def test_vm_creation_can_fail_for_lack_of_memory(ready: SimulatedHost, tool: Run) -> None:
    ready.fail_loaders(call="vm_create")
    failed = tool(*LOAD_ARGV)
    assert (failed.returncode, failed.stderr) == (1, "vm_create: Cannot allocate memory\n")
    assert ready.vms() == frozenset()
    ready.fail_loaders(call="vm_create")
    grub = tool("grub-bhyve", "-M", "1G", GUEST)
    assert (grub.returncode, grub.stderr) == (
        1,
        f"Could not create VM {GUEST}\nError in initializing VM\n",
    )
    with pytest.raises(ValueError, match="count"):
        ready.fail_loaders(0)


@pytest.mark.parametrize("status", [1, 2])
def test_a_menu_quit_or_reboot_prints_nothing(ready: SimulatedHost, tool: Run, status: int) -> None:
    ready.set_loader_exit(GUEST, status)
    quit_ = tool(*LOAD_ARGV)
    assert (quit_.returncode, quit_.stdout, quit_.stderr) == (status, "", "")
    assert ready.vm_memory(GUEST) == 1 << 30  # the menu runs after the VM is set up
    assert tool(*LOAD_ARGV).returncode == 0
    ready.set_loader_exit(GUEST, status)
    grub = tool("grub-bhyve", "-M", "1024M", GUEST)
    assert (grub.returncode, grub.stderr) == (status, "")


def test_grub_bhyve_reads_its_device_map(ready: SimulatedHost, tool: Run) -> None:
    device_map = ready.path("/vm/device.map")
    device_map.write_text(f"(hd0) {DISK}\n(cd0) /vm/linux.iso\n")
    argv = ("grub-bhyve", "-m", "/vm/device.map", "-r", "hd0,msdos1", "-M", "1024M", "linux")
    missing_iso = tool(*argv)
    assert (missing_iso.returncode, missing_iso.stderr) == (
        1,
        "grub-bhyve: error: cannot open `/vm/linux.iso': No such file or directory.\n",
    )
    assert "linux" in ready.vms()  # grub_emu_bhyve_init() ran before the map was read
    ready.path("/vm/linux.iso").write_bytes(b"")
    assert tool(*argv).returncode == 0
    wrong_root = tool("grub-bhyve", "-m", "/vm/device.map", "-r", "hd1", "-M", "1024M", "linux")
    assert wrong_root.returncode == 1


@pytest.mark.parametrize(
    ("argv", "status", "stderr"),
    [
        (
            ("-M", "lots", GUEST),
            1,
            "Invalid guest memory size `lots'.\nError in parsing command line arguments\n",
        ),
        (("-M", "1G"), 1, "Required VM name parameter not supplied\n" + GRUB_TRY),
        (("-Q", GUEST), 64, "grub-bhyve: illegal option -- Q\n" + GRUB_TRY),
    ],
)
def test_grub_bhyve_arguments(
    ready: SimulatedHost, tool: Run, argv: tuple[str, ...], status: int, stderr: str
) -> None:
    result = tool("grub-bhyve", *argv)
    assert (result.returncode, result.stderr) == (status, stderr)
    assert ready.vms() == frozenset()
