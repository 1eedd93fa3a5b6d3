"""Simulated zfs: volumes as sparse /dev/zvol files, OpenZFS's create/snapshot/clone/set/get/list
semantics and messages, and `zfs list` output that parses back."""

from __future__ import annotations

import math
import time

import pytest
from sim_helpers import Run

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
    assert host.datasets()["zroot/vms"] == "filesystem"  # -p made the parent


def test_no_volumes(host: SimulatedHost, tool: Run) -> None:
    result = tool(*LIST)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert parse_zfs_volumes(result.stdout) == host.zvols() == {}
    # Only a listing meant for people says so.
    assert tool("zfs", "list", "-t", "volume").stderr == "no datasets available\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("-V", "1G", "zroot/vms/a"), "cannot create 'zroot/vms/a': dataset already exists\n"),
        (("-V", "1G", "tank/a"), "cannot open 'tank': no such pool\n"),
        (("tank/a",), "cannot create 'tank/a': no such pool 'tank'\n"),
        (("-V", "1G", "zroot/x/y"), "cannot create 'zroot/x/y': parent does not exist\n"),
        (
            ("-V", "1G", "zroot/vms/a/b"),
            "cannot create 'zroot/vms/a/b': parent is not a filesystem\n",
        ),
        (("-V", "0", "zroot/z"), "cannot create 'zroot/z': volume size cannot be zero\n"),
        (("-V", "lots", "zroot/z"), "bad volume size 'lots': bad numeric value 'lots'\n"),
        (("-V", "1X", "zroot/z"), "bad volume size '1X': invalid numeric suffix 'X'\n"),
        (("-p", "-V", "1G", "zroot/vms"), "cannot create 'zroot/vms': dataset already exists\n"),
    ],
)
def test_create_errors(tool: Run, argv: tuple[str, ...], message: str) -> None:
    assert tool("zfs", "create", "-p", "-V", "1G", "zroot/vms/a").returncode == 0
    result = tool("zfs", "create", *argv)
    assert (result.returncode, result.stderr) == (1, message)


def test_create_usage_is_2(tool: Run) -> None:
    for argv in (("-V", "1G"), ("-V", "1G", "zroot/a", "zroot/b"), ("-Q", "zroot/a"), ("-V",)):
        result = tool("zfs", "create", *argv)
        assert result.returncode == 2
        assert "usage:\n\tcreate " in result.stderr


def test_create_p_of_an_existing_volume_is_silent(host: SimulatedHost, tool: Run) -> None:
    argv = ("zfs", "create", "-p", "-V", "1G", "zroot/vms/a")
    assert tool(*argv).returncode == 0
    again = tool(*argv)
    assert (again.returncode, again.stdout, again.stderr) == (0, "", "")
    assert host.zvols() == {"zroot/vms/a": 1 << 30}  # not resized, not recreated


def test_create_rounds_the_size_up_to_the_block_size(host: SimulatedHost, tool: Run) -> None:
    assert tool("zfs", "create", "-V", "1000", "zroot/small").returncode == 0
    assert host.zvols() == {"zroot/small": 16384}
    assert tool("zfs", "create", "-b", "4K", "-V", "5K", "zroot/fine").returncode == 0
    assert host.zvols()["zroot/fine"] == 8192


def test_snapshot_and_clone_keep_the_snapshots_content(host: SimulatedHost, tool: Run) -> None:
    assert tool("zfs", "create", "-p", "-V", "64M", "zroot/images/base").returncode == 0
    base = host.path("/dev/zvol/zroot/images/base")
    with open(base, "r+b") as f:
        f.seek(1 << 20)
        f.write(b"golden image")
    assert tool("zfs", "snapshot", "zroot/images/base@gold").returncode == 0
    with open(base, "r+b") as f:
        f.seek(1 << 20)
        f.write(b"changed since")
    cloned = tool("zfs", "clone", "zroot/images/base@gold", "zroot/vms/guest")
    assert (cloned.returncode, cloned.stderr) == (
        1,
        "cannot create 'zroot/vms/guest': parent does not exist\n",
    )
    assert tool("zfs", "clone", "-p", "zroot/images/base@gold", "zroot/vms/guest").returncode == 0
    clone = host.path("/dev/zvol/zroot/vms/guest")
    assert clone.stat().st_size == 64 << 20
    with open(clone, "rb") as f:
        f.seek(1 << 20)
        assert f.read(12) == b"golden image"
    origin = tool("zfs", "get", "-H", "-p", "-o", "value", "origin", "zroot/vms/guest")
    assert origin.stdout == "zroot/images/base@gold\n"
    assert host.zvols()["zroot/vms/guest"] == 64 << 20


def test_snapshot_errors(tool: Run) -> None:
    tool("zfs", "create", "-V", "1G", "zroot/a")
    assert tool("zfs", "snapshot", "zroot/a@s").returncode == 0
    again = tool("zfs", "snapshot", "zroot/a@s")
    assert (again.returncode, again.stderr) == (
        1,
        "cannot create snapshot 'zroot/a@s': dataset already exists\n",
    )
    missing = tool("zfs", "snapshot", "zroot/nope@s")
    assert missing.returncode == 2  # zfs_do_snapshot() goes to usage after the message
    assert missing.stderr.startswith("cannot open 'zroot/nope': dataset does not exist\nusage:\n")
    assert tool("zfs", "snapshot", "zroot/a").returncode == 2


def test_clone_errors(tool: Run) -> None:
    tool("zfs", "create", "-V", "1G", "zroot/a")
    tool("zfs", "snapshot", "zroot/a@s")
    tool("zfs", "create", "-V", "1G", "zroot/b")
    missing = tool("zfs", "clone", "zroot/a@nope", "zroot/c")
    assert (missing.returncode, missing.stderr) == (
        1,
        "cannot open 'zroot/a@nope': dataset does not exist\n",
    )
    exists = tool("zfs", "clone", "zroot/a@s", "zroot/b")
    assert (exists.returncode, exists.stderr) == (
        1,
        "cannot create 'zroot/b': dataset already exists\n",
    )
    assert tool("zfs", "clone", "-p", "zroot/a@s", "zroot/b").returncode == 0
    assert tool("zfs", "clone", "zroot/a@s").returncode == 2


def test_snapshots_are_listed_when_asked_for(tool: Run) -> None:
    tool("zfs", "create", "-V", "1G", "zroot/a")
    tool("zfs", "snapshot", "zroot/a@one")
    tool("zfs", "snapshot", "zroot/a@two")
    assert "@" not in tool("zfs", "list", "-H", "-o", "name").stdout
    snapshots = tool("zfs", "list", "-H", "-p", "-t", "snapshot", "-o", "name,volsize")
    assert snapshots.stdout == f"zroot/a@one\t{1 << 30}\nzroot/a@two\t{1 << 30}\n"
    assert tool("zfs", "list", "-H", "-o", "name", "zroot/a@two").stdout == "zroot/a@two\n"
    missing = tool("zfs", "list", "zroot/a@three")
    assert (missing.returncode, missing.stderr) == (
        1,
        "cannot open 'zroot/a@three': dataset does not exist\n",
    )


def test_set_volsize_grows_the_device(host: SimulatedHost, tool: Run) -> None:
    tool("zfs", "create", "-V", "1G", "zroot/a")
    assert tool("zfs", "set", "volsize=2G", "zroot/a").returncode == 0
    assert host.path("/dev/zvol/zroot/a").stat().st_size == 2 << 30
    got = tool("zfs", "get", "-H", "-p", "-o", "value", "volsize", "zroot/a")
    assert got.stdout == f"{2 << 30}\n"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("1000", "'volsize' must be a multiple of volume block size (16K)"),
        ("0", "'volsize' cannot be zero"),
        ("big", "bad numeric value 'big'"),
    ],
)
def test_set_volsize_errors(host: SimulatedHost, tool: Run, value: str, reason: str) -> None:
    tool("zfs", "create", "-V", "1G", "zroot/a")
    result = tool("zfs", "set", f"volsize={value}", "zroot/a")
    assert (result.returncode, result.stderr) == (
        1,
        f"cannot set property for 'zroot/a': {reason}\n",
    )
    assert host.zvols() == {"zroot/a": 1 << 30}


def test_set_and_get_of_a_missing_dataset(tool: Run) -> None:
    for argv in (("set", "volsize=1G", "zroot/nope"), ("get", "volsize", "zroot/nope")):
        result = tool("zfs", *argv)
        assert (result.returncode, result.stderr) == (
            1,
            "cannot open 'zroot/nope': dataset does not exist\n",
        )


def test_get_formats(tool: Run) -> None:
    tool("zfs", "create", "-V", "1536M", "zroot/a")
    assert tool("zfs", "get", "-H", "-o", "value", "volsize", "zroot/a").stdout == "1.50G\n"
    assert tool("zfs", "get", "-H", "-o", "value", "volsize", "zroot").stdout == "-\n"
    assert tool("zfs", "get", "-H", "-o", "name,value", "volblocksize", "zroot/a").stdout == (
        "zroot/a\t16K\n"
    )
    bad = tool("zfs", "get", "bogus", "zroot/a")
    assert bad.returncode == 2
    assert bad.stderr.startswith("bad property list: invalid property 'bogus'\nusage:\n")


def test_unknown_command(tool: Run) -> None:
    result = tool("zfs", "frobnicate")
    assert (result.returncode, result.stderr.splitlines()[0]) == (
        2,
        "unrecognized command 'frobnicate'",
    )


def test_a_held_zvol_node_appears_when_released(host: SimulatedHost, tool: Run) -> None:
    host.delay_zvol_nodes(math.inf)
    assert tool("zfs", "create", "-V", "1G", "zroot/a").returncode == 0
    device = host.path("/dev/zvol/zroot/a")
    assert not device.exists()
    assert host.zvols() == {"zroot/a": 1 << 30}  # the dataset exists; only its node lags
    assert host.release_zvol_nodes() == ["zroot/a"]
    assert device.stat().st_size == 1 << 30
    host.delay_zvol_nodes(None)
    tool("zfs", "snapshot", "zroot/a@s")
    tool("zfs", "clone", "zroot/a@s", "zroot/b")
    assert host.path("/dev/zvol/zroot/b").exists()


def test_a_delayed_zvol_node_appears_by_itself(host: SimulatedHost, tool: Run) -> None:
    host.delay_zvol_nodes(0.05)
    assert tool("zfs", "create", "-V", "1G", "zroot/a").returncode == 0
    device = host.path("/dev/zvol/zroot/a")
    deadline = time.monotonic() + 10
    while not device.exists():
        assert time.monotonic() < deadline, "the delayed zvol node never appeared"
        time.sleep(0.01)
    assert device.stat().st_size == 1 << 30
