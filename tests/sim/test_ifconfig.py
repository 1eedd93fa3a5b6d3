"""Simulated ifconfig: the Handbook's host preparation, FreeBSD's errors, and `ifconfig -a`
output that parses back into the state."""

from __future__ import annotations

from sim_tools import Run

from reconciler.facts import Interface, parse_ifconfig
from reconciler.sim import SimulatedHost


def test_fresh_host_has_loopback_and_physical_nics_up(host: SimulatedHost) -> None:
    interfaces = host.interfaces()
    assert set(interfaces) == {"lo0", "igb0", "em0"}
    assert all(i.up and i.kind == "other" for i in interfaces.values())


def test_setup_takes_the_physical_nics_and_is_idempotent(host: SimulatedHost, tool: Run) -> None:
    tool("ifconfig", "tap0", "create")
    again = SimulatedHost(host.root).setup(physical=("ix0",))
    assert "tap0" in again.interfaces()  # an existing host keeps its state
    other = SimulatedHost(host.root.parent / "other").setup(physical=("ix0", "ix1"))
    assert set(other.interfaces()) == {"lo0", "ix0", "ix1"}


def test_handbook_host_preparation(host: SimulatedHost, tool: Run) -> None:
    for argv in (
        ("ifconfig", "tap0", "create"),
        ("ifconfig", "bridge0", "create"),
        ("ifconfig", "bridge0", "addm", "igb0", "addm", "tap0"),
        ("ifconfig", "bridge0", "up"),
    ):
        result = tool(*argv)
        assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    interfaces = host.interfaces()
    # FreeBSD prints the most recently added member first.
    assert interfaces["bridge0"] == Interface(
        name="bridge0", kind="bridge", up=True, members=("tap0", "igb0"), groups=("bridge",)
    )
    assert interfaces["tap0"] == Interface(name="tap0", kind="tap", up=False, groups=("tap",))
    assert "if_bridge" in host.modules()  # ifconfig loads the cloner on demand


def test_ifconfig_a_parses_back_into_the_state(host: SimulatedHost, tool: Run) -> None:
    tool("ifconfig", "tap0", "create", "description", "web server", "up")
    tool("ifconfig", "tap1", "create")
    tool("ifconfig", "tap1", "group", "vmport")
    tool("ifconfig", "bridge0", "create")
    tool("ifconfig", "bridge0", "addm", "em0", "addm", "tap0", "addm", "tap1")
    tool("ifconfig", "bridge0", "deletem", "tap1")
    for argv in (("ifconfig", "-a"), ("ifconfig",)):
        assert parse_ifconfig(tool(*argv).stdout) == host.interfaces()
    single = parse_ifconfig(tool("ifconfig", "tap0").stdout)
    assert single == {"tap0": host.interfaces()["tap0"]}
    assert single["tap0"].description == "web server"


def test_list_and_group_listing(tool: Run) -> None:
    tool("ifconfig", "tap0", "create")
    tool("ifconfig", "bridge0", "create")
    assert tool("ifconfig", "-l").stdout == "igb0 lo0 em0 tap0 bridge0\n"
    assert tool("ifconfig", "-l", "-d").stdout == "tap0 bridge0\n"
    assert tool("ifconfig", "-g", "tap").stdout == "tap0\n"
    assert tool("ifconfig", "-g", "nosuch").stdout == ""


def test_cloner_create_prints_the_allocated_name(tool: Run) -> None:
    tool("ifconfig", "tap0", "create")
    assert tool("ifconfig", "tap", "create").stdout == "tap1\n"
    assert tool("ifconfig", "bridge", "create").stdout == "bridge0\n"


def test_create_errors(tool: Run) -> None:
    tool("ifconfig", "tap0", "create")
    exists = tool("ifconfig", "tap0", "create")
    assert (exists.returncode, exists.stderr) == (1, "ifconfig: SIOCIFCREATE2: File exists\n")
    assert tool("ifconfig", "foo0", "create").returncode == 1


def test_missing_interface(tool: Run) -> None:
    for argv in (("ifconfig", "tap9"), ("ifconfig", "tap9", "up"), ("ifconfig", "tap9", "destroy")):
        result = tool(*argv)
        assert (result.returncode, result.stderr) == (
            1,
            "ifconfig: interface tap9 does not exist\n",
        )


def test_addm_errors(tool: Run) -> None:
    tool("ifconfig", "tap0", "create")
    tool("ifconfig", "bridge0", "create")
    tool("ifconfig", "bridge1", "create")
    tool("ifconfig", "bridge0", "addm", "tap0")
    cases = {
        ("bridge0", "tap0"): "ifconfig: BRDGADD tap0: File exists\n",
        ("bridge1", "tap0"): "ifconfig: BRDGADD tap0: Device busy\n",
        ("bridge1", "tap7"): "ifconfig: BRDGADD tap7: No such file or directory\n",
    }
    for (bridge, member), message in cases.items():
        result = tool("ifconfig", bridge, "addm", member)
        assert (result.returncode, result.stderr) == (1, message)
    missing = tool("ifconfig", "bridge1", "deletem", "tap0")
    assert missing.stderr == "ifconfig: BRDGDEL tap0: No such file or directory\n"


def test_addm_stops_at_the_first_error_keeping_earlier_members(
    host: SimulatedHost, tool: Run
) -> None:
    tool("ifconfig", "bridge0", "create")
    result = tool("ifconfig", "bridge0", "addm", "igb0", "addm", "tap5", "addm", "em0")
    assert result.returncode == 1
    assert host.interfaces()["bridge0"].members == ("igb0",)


def test_up_down_and_flags(host: SimulatedHost, tool: Run) -> None:
    tool("ifconfig", "bridge0", "create")
    assert tool("ifconfig", "bridge0").stdout.startswith(
        "bridge0: flags=8802<BROADCAST,SIMPLEX,MULTICAST> metric 0 mtu 1500\n"
    )
    tool("ifconfig", "bridge0", "up")
    assert tool("ifconfig", "bridge0").stdout.startswith(
        "bridge0: flags=8843<UP,BROADCAST,RUNNING,SIMPLEX,MULTICAST> metric 0 mtu 1500\n"
    )
    tool("ifconfig", "bridge0", "down")
    assert host.interfaces()["bridge0"].up is False


def test_destroy_removes_bridge_membership(host: SimulatedHost, tool: Run) -> None:
    tool("ifconfig", "tap0", "create")
    tool("ifconfig", "bridge0", "create")
    tool("ifconfig", "bridge0", "addm", "tap0", "addm", "igb0")
    assert tool("ifconfig", "tap0", "destroy").returncode == 0
    assert host.interfaces()["bridge0"].members == ("igb0",)
    physical = tool("ifconfig", "igb0", "destroy")
    assert (physical.returncode, physical.stderr) == (
        1,
        "ifconfig: SIOCIFDESTROY: Invalid argument\n",
    )
    tool("ifconfig", "bridge0", "destroy")
    assert set(host.interfaces()) == {"lo0", "igb0", "em0"}
