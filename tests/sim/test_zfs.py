"""Simulated zfs: volumes as sparse /dev/zvol files, `zfs list` output that parses back."""

from __future__ import annotations

from sim_tools import Run

from reconciler.facts import parse_zfs_volumes
from reconciler.sim import SimulatedHost

LIST = ("zfs", "list", "-H", "-p", "-t", "volume", "-o", "name,volsize")


def test_handbook_zvol(host: SimulatedHost, tool: Run) -> None:
    result = tool("zfs", "create", "-V16G", "-o", "volmode=dev", "zroot/linuxdisk0")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    device = host.path("/dev/zvol/zroot/linuxdisk0")
    assert device.stat().st_size == 16 << 30
    assert device.stat().st_blocks == 0  # sparse
    assert tool(*LIST).stdout == f"zroot/linuxdisk0\t{16 << 30}\n"


def test_list_parses_back_into_the_state(host: SimulatedHost, tool: Run) -> None:
    tool("zfs", "create", "-p", "-V", "8G", "zroot/vms/a")
    tool("zfs", "create", "-V", "1024M", "-o", "volmode=dev", "zroot/vms/b")
    assert (
        parse_zfs_volumes(tool(*LIST).stdout)
        == host.zvols()
        == {
            "zroot/vms/a": 8 << 30,
            "zroot/vms/b": 1 << 30,
        }
    )


def test_no_volumes(host: SimulatedHost, tool: Run) -> None:
    result = tool(*LIST)
    assert (result.returncode, result.stdout) == (0, "")
    assert parse_zfs_volumes(result.stdout) == host.zvols() == {}


def test_create_errors(tool: Run) -> None:
    tool("zfs", "create", "-p", "-V", "1G", "zroot/vms/a")
    cases = {
        ("zroot/vms/a",): "cannot create 'zroot/vms/a': dataset already exists\n",
        ("tank/a",): "cannot create 'tank/a': no such pool 'tank'\n",
        ("zroot/x/y",): "cannot create 'zroot/x/y': parent does not exist\n",
    }
    for (name,), message in cases.items():
        result = tool("zfs", "create", "-V", "1G", name)
        assert (result.returncode, result.stderr) == (1, message)
    assert tool("zfs", "create", "-V", "lots", "zroot/z").returncode == 2
