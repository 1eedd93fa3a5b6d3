"""Simulated ifconfig: the Handbook's host preparation, FreeBSD's errors, and `ifconfig -a`
output that parses back into the state."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from sim_helpers import GUEST, HANDBOOK_ARGV, LOAD_ARGV, Boot, Run, wait_running

from reconciler.facts import Interface, parse_ifconfig
from reconciler.sim import SimulatedHost
from reconciler.sim.tools import run_tool


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


def test_create_of_an_existing_interface(host: SimulatedHost, tool: Run) -> None:
    tool("ifconfig", "tap0", "create")
    exists = tool("ifconfig", "tap0", "create")
    assert (exists.returncode, exists.stdout, exists.stderr) == (
        1,
        "",
        "ifconfig: interface tap0 already exists\n",
    )
    # With more to do, `create` is dropped and the existing interface configured.
    more = tool("ifconfig", "tap0", "create", "up")
    assert (more.returncode, more.stderr) == (0, "")
    assert host.interfaces()["tap0"].up is True
    physical = tool("ifconfig", "igb0", "create")
    assert (physical.returncode, physical.stderr) == (
        1,
        "ifconfig: interface igb0 already exists\n",
    )


def test_create_of_something_no_cloner_makes(tool: Run) -> None:
    result = tool("ifconfig", "foo0", "create")
    assert (result.returncode, result.stderr) == (1, "ifconfig: SIOCIFCREATE2: Invalid argument\n")


def test_a_description_is_bytes(host: SimulatedHost) -> None:
    raw = b"caf\xe9 \xff\x01 \xc3\xa9"
    env = host.env()
    argv = [b"ifconfig", b"tap0", b"create", b"description", raw]
    assert subprocess.run(argv, env=env, capture_output=True, check=False).returncode == 0
    shown = subprocess.run([b"ifconfig", b"-a"], env=env, capture_output=True, check=False)
    assert b"\tdescription: " + raw + b"\n" in shown.stdout
    # The log keeps the argument exactly as argv decoded it (surrogateescape).
    assert host.commands()[0][-1] == raw.decode("utf-8", "surrogateescape")
    assert host.interfaces()["tap0"].description == raw.decode("utf-8", "surrogateescape")


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


# Pinned before net.py was split into smaller functions: the exact text, statuses and effects
# of every parameter and listing. Run in this process (the wrappers' own entry point), so the
# table costs no fork per case.


def ifconfig_here(host: SimulatedHost, *args: str) -> tuple[int, str, str]:
    status, out, err, _ = run_tool("ifconfig", str(host.root), list(args))
    return status, out, err


def _bridge_block(name: str, ether: str, flags: str, members: tuple[str, ...]) -> list[str]:
    return [
        f"{name}: flags={flags} metric 0 mtu 1500",
        "\toptions=0",
        f"\tether {ether}",
        f"\tid {ether} priority 32768 hellotime 2 fwddelay 15",
        "\tmaxage 20 holdcnt 6 proto rstp maxaddr 2000 timeout 1200",
        f"\troot id {ether} priority 32768 ifcost 0 port 0",
        *members,
        "\tgroups: bridge",
        "\tnd6 options=9<PERFORMNUD,IFDISABLED>",
    ]


_PHYSICAL_OPTIONS = (
    "\toptions=4e527bb<RXCSUM,TXCSUM,VLAN_MTU,VLAN_HWTAGGING,JUMBO_MTU,VLAN_HWCSUM,TSO4,TSO6,"
    "LRO,WOL_MAGIC,VLAN_HWFILTER,VLAN_HWTSO,RXCSUM_IPV6,TXCSUM_IPV6,NOMAP>"
)
_MEMBER = "\tmember: {} flags=143<LEARNING,DISCOVER,AUTOEDGE,AUTOPTP>"
_CLOSED_TAP = ["\tmedia: Ethernet autoselect", "\tstatus: no carrier"]
_ND6_ETHER = "\tnd6 options=29<PERFORMNUD,IFDISABLED,AUTO_LINKLOCAL>"


def test_ifconfig_a_prints_every_kind_of_interface_exactly(host: SimulatedHost) -> None:
    for args in (
        ("tap0", "create"),
        ("bridge0", "create"),
        ("bridge0", "addm", "igb0", "addm", "tap0", "up"),
        ("tap1", "create", "descr", "spare", "group", "vmport", "mtu", "9000"),
        ("bridge1", "create"),
    ):
        assert ifconfig_here(host, *args) == (0, "", "")
    lines = [
        # A bridge member is promiscuous; only the first NIC has the sim's address.
        "igb0: flags=8943<UP,BROADCAST,RUNNING,PROMISC,SIMPLEX,MULTICAST> metric 0 mtu 1500",
        _PHYSICAL_OPTIONS,
        "\tether 00:25:90:25:00:01",
        "\tinet 192.168.1.10 netmask 0xffffff00 broadcast 192.168.1.255",
        "\tmedia: Ethernet autoselect (1000baseT <full-duplex>)",
        "\tstatus: active",
        _ND6_ETHER,
        "lo0: flags=8049<UP,LOOPBACK,RUNNING,MULTICAST> metric 0 mtu 16384",
        "\toptions=680003<RXCSUM,TXCSUM,LINKSTATE,RXCSUM_IPV6,TXCSUM_IPV6>",
        "\tinet6 ::1 prefixlen 128",
        "\tinet6 fe80::1%lo0 prefixlen 64 scopeid 0x2",
        "\tinet 127.0.0.1 netmask 0xff000000",
        "\tgroups: lo",
        "\tnd6 options=21<PERFORMNUD,AUTO_LINKLOCAL>",
        "em0: flags=8843<UP,BROADCAST,RUNNING,SIMPLEX,MULTICAST> metric 0 mtu 1500",
        _PHYSICAL_OPTIONS,
        "\tether 00:25:90:6f:00:03",
        "\tmedia: Ethernet autoselect (1000baseT <full-duplex>)",
        "\tstatus: active",
        _ND6_ETHER,
        "tap0: flags=8902<BROADCAST,PROMISC,SIMPLEX,MULTICAST> metric 0 mtu 1500",
        "\toptions=80000<LINKSTATE>",
        "\tether 58:9c:fc:94:00:04",
        "\tgroups: tap",
        *_CLOSED_TAP,
        _ND6_ETHER,
        *_bridge_block(
            "bridge0",
            "58:9c:fc:b9:00:05",
            "8843<UP,BROADCAST,RUNNING,SIMPLEX,MULTICAST>",
            (
                _MEMBER.format("tap0"),
                "\t        ifmaxaddr 0 port 4 priority 128 path cost 2000000",
                _MEMBER.format("igb0"),
                "\t        ifmaxaddr 0 port 1 priority 128 path cost 20000",
            ),
        ),
        "tap1: flags=8802<BROADCAST,SIMPLEX,MULTICAST> metric 0 mtu 9000",
        "\tdescription: spare",
        "\toptions=80000<LINKSTATE>",
        "\tether 58:9c:fc:de:00:06",
        "\tgroups: tap vmport",
        *_CLOSED_TAP,
        _ND6_ETHER,
        *_bridge_block("bridge1", "58:9c:fc:03:00:07", "8802<BROADCAST,SIMPLEX,MULTICAST>", ()),
    ]
    assert ifconfig_here(host, "-a") == (0, "".join(line + "\n" for line in lines), "")


def test_a_tap_opened_by_a_guest_is_running_and_active(
    ready: SimulatedHost, boot: Boot, tool: Run
) -> None:
    assert tool("ifconfig", "tap0", "create").returncode == 0
    assert tool(*LOAD_ARGV).returncode == 0
    pid = wait_running(ready, boot(*HANDBOOK_ARGV), GUEST)
    shown = tool("ifconfig", "tap0")
    assert (shown.returncode, shown.stderr) == (0, "")
    assert shown.stdout.splitlines() == [
        "tap0: flags=8843<UP,BROADCAST,RUNNING,SIMPLEX,MULTICAST> metric 0 mtu 1500",
        "\toptions=80000<LINKSTATE>",
        "\tether 58:9c:fc:94:00:04",
        "\tgroups: tap",
        "\tmedia: Ethernet autoselect",
        "\tstatus: active",
        _ND6_ETHER,
        f"\tOpened by PID {pid}",
    ]


@pytest.mark.parametrize("param", ["addm", "deletem", "description", "descr", "group", "mtu"])
def test_a_parameter_without_its_value(host: SimulatedHost, param: str) -> None:
    ifconfig_here(host, "bridge0", "create")
    assert ifconfig_here(host, "bridge0", "up", param) == (
        1,
        "",
        f"ifconfig: {param}: missing argument\n",
    )
    # Parameters apply one at a time: those before the faulty one stay applied.
    assert host.interfaces()["bridge0"].up is True


def test_an_unknown_parameter_stops_after_the_earlier_ones(host: SimulatedHost) -> None:
    ifconfig_here(host, "tap0", "create")
    assert ifconfig_here(host, "tap0", "up", "bogus", "down") == (
        1,
        "",
        "ifconfig: bogus: bad value\n",
    )
    assert host.interfaces()["tap0"].up is True


def test_groups_are_added_once_removed_and_checked(host: SimulatedHost) -> None:
    ifconfig_here(host, "tap0", "create")
    assert ifconfig_here(host, "tap0", "group", "vm", "group", "lan", "group", "vm") == (0, "", "")
    assert host.interfaces()["tap0"].groups == ("tap", "vm", "lan")
    assert ifconfig_here(host, "tap0", "-group", "vm", "-group", "absent") == (0, "", "")
    assert host.interfaces()["tap0"].groups == ("tap", "lan")
    # if_addgroup() refuses a group name ending in a digit, and an empty one.
    for bad in ("vm1", ""):
        assert ifconfig_here(host, "tap0", "group", bad) == (
            1,
            "",
            "ifconfig: SIOCAIFGROUP: Invalid argument\n",
        )
    assert host.interfaces()["tap0"].groups == ("tap", "lan")
    assert ifconfig_here(host, "-g", "lan") == (0, "tap0\n", "")


def test_mtu_bounds(host: SimulatedHost) -> None:
    ifconfig_here(host, "tap0", "create")
    for bad in ("71", "65536", "abc", "-1", ""):
        assert ifconfig_here(host, "tap0", "mtu", bad) == (
            1,
            "",
            "ifconfig: SIOCSIFMTU (set mtu): Invalid argument\n",
        )
    for good in ("72", "65535"):
        assert ifconfig_here(host, "tap0", "mtu", good, "up") == (0, "", "")
        assert ifconfig_here(host, "tap0")[1].splitlines()[0].endswith(f" mtu {good}")


def test_descriptions_set_and_clear(host: SimulatedHost) -> None:
    ifconfig_here(host, "tap0", "create")
    for args, expected in (
        (("descr", "a b"), "a b"),
        (("-description",), None),
        (("description", "web"), "web"),
        (("description", ""), None),
        (("descr", "x"), "x"),
        (("-descr",), None),
    ):
        assert ifconfig_here(host, "tap0", *args) == (0, "", "")
        assert host.interfaces()["tap0"].description == expected


def test_a_destroyed_interface_takes_no_more_parameters(host: SimulatedHost) -> None:
    ifconfig_here(host, "tap0", "create")
    assert ifconfig_here(host, "tap0", "destroy", "up") == (
        1,
        "",
        "ifconfig: interface tap0 does not exist\n",
    )
    assert "tap0" not in host.interfaces()


def test_bridge_parameters_on_what_is_no_bridge(host: SimulatedHost) -> None:
    ifconfig_here(host, "tap0", "create")
    ifconfig_here(host, "bridge0", "create")
    ifconfig_here(host, "bridge1", "create")
    for args, message in (
        (("tap0", "addm", "igb0"), "ifconfig: BRDGADD igb0: Invalid argument\n"),
        (("tap0", "deletem", "igb0"), "ifconfig: BRDGDEL igb0: Invalid argument\n"),
        (("bridge0", "addm", "bridge1"), "ifconfig: BRDGADD bridge1: Invalid argument\n"),
        (("bridge0", "addm", "bridge0"), "ifconfig: BRDGADD bridge0: Invalid argument\n"),
        (("bridge0", "addm", "lo0"), "ifconfig: BRDGADD lo0: Invalid argument\n"),
    ):
        assert ifconfig_here(host, *args) == (1, "", message)
    assert host.interfaces()["bridge0"].members == ()


def test_plumb_is_create_and_a_cloned_name_is_configured(host: SimulatedHost) -> None:
    assert ifconfig_here(host, "tap", "plumb", "description", "new", "up") == (0, "tap0\n", "")
    tap = host.interfaces()["tap0"]
    assert (tap.description, tap.up) == ("new", True)
    assert ifconfig_here(host, "bridge3", "plumb") == (0, "", "")
    assert "bridge3" in host.interfaces()


def test_listing_options_and_usage(host: SimulatedHost) -> None:
    ifconfig_here(host, "tap0", "create")
    assert ifconfig_here(host, "-l", "-u") == (0, "igb0 lo0 em0\n", "")
    assert ifconfig_here(host, "-g", "bridge") == (0, "", "")
    usage = (
        "usage: ifconfig [-j jail] [-f type:format] [-L] [-C] [-g groupname] interface "
        "address_family [address [dest_address]] [parameters]\n"
    )
    for args in (("-g",), ("-g", "tap", "extra"), ("-x",), ("-",)):
        assert ifconfig_here(host, *args) == (1, "", usage)


def test_a_cloner_name_loads_its_module_even_when_the_interface_is_missing(
    tmp_path: Path,
) -> None:
    custom = SimulatedHost(tmp_path / "custom").setup(compiled_in=())
    assert ifconfig_here(custom, "bridge7", "up") == (
        1,
        "",
        "ifconfig: interface bridge7 does not exist\n",
    )
    assert "if_bridge" in custom.modules()
    assert ifconfig_here(custom, "tap") == (1, "", "ifconfig: interface tap does not exist\n")
    assert "if_tuntap" in custom.modules()
