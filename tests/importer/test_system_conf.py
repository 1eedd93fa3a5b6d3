"""system.conf: switches (lib/vm-switch*) and datastores (lib/vm-datastore) as typed values."""

from __future__ import annotations

from vmbhyve_fixtures import system_conf

from reconciler.vmbhyve import Datastore, Switch, parse_system_conf


def test_fixture_switches_and_datastores() -> None:
    system = system_conf()
    assert system.problems == ()
    assert system.switches == (
        Switch(name="public", type="standard", ports=("igb0",)),
        Switch(name="backend", type="standard", ports=("igb1",), vlan=20, private=True, mtu=9000),
        Switch(name="storage", type="vale"),
    )
    assert system.datastores == (Datastore(name="ssd", kind="zfs", location="ssd/vm"),)
    assert system.console == "nmdm"


def test_bridge_names_follow_switch_standard_init() -> None:
    # switch::standard::init: `ifconfig bridge create name vm-NAME` when NAME has <= 12
    # characters, else `descr vm/NAME` on a kernel-named bridgeN; manual: bridge_NAME.
    system = parse_system_conf(
        'switch_list="lan averylongname1 mine vx vl ng"\n'
        'type_lan="standard"\ntype_averylongname1="standard"\n'
        'type_mine="manual"\nbridge_mine="bridge7"\n'
        'type_vx="vxlan"\nvlan_vx="100"\nports_vx="em0"\n'
        'type_vl="vale"\ntype_ng="netgraph"\n'
    )
    assert [(s.name, s.bridge_name) for s in system.switches] == [
        ("lan", "vm-lan"),
        ("averylongname1", None),
        ("mine", "bridge7"),
        ("vx", "vm-vx"),
        ("vl", None),
        ("ng", None),
    ]


def test_a_switch_missing_from_the_list_is_standard() -> None:
    # switch::type: `config::core::get "_type" "type_${_switch}" "standard"`.
    system = parse_system_conf('switch_list="public"\n')
    assert system.switch("public") == Switch(name="public")
    assert system.switch("elsewhere") == Switch(name="elsewhere", listed=False)
    assert parse_system_conf('type_lab="vale"\n').switch("lab").type == "vale"


def test_values_it_cannot_read_are_reported_with_their_line() -> None:
    system = parse_system_conf(
        'switch_list="a b"\nvlan_a="ten"\nmtu_a="9000"\ntype_b="openvswitch"\nports_b="em0 em1"\n'
    )
    assert [(p.line, p.message) for p in system.problems] == [
        (2, "`vlan_a` must be a number, got 'ten'"),
        (4, "switch `b` has type 'openvswitch'; vm-bhyve knows standard, manual, vale, "
            "netgraph, vxlan and adds no device for a NIC on any other"),
    ]  # fmt: skip
    assert system.switch("a").vlan is None
    assert system.switch("a").mtu == 9000
    assert system.switch("b").ports == ("em0", "em1")


def test_datastore_kinds_and_tmux_console() -> None:
    # datastore::list: path_NAME is `zfs:DATASET`, `iso:DIR`, `img:DIR` or a directory.
    system = parse_system_conf(
        'datastore_list="z i m d"\npath_z="zfs:tank/vms"\npath_i="iso:/isos"\n'
        'path_m="img:/images"\npath_d="/data/vms"\nconsole="tmux"\n'
    )
    assert system.datastores == (
        Datastore("z", "zfs", "tank/vms"),
        Datastore("i", "iso", "/isos"),
        Datastore("m", "img", "/images"),
        Datastore("d", "directory", "/data/vms"),
    )
    assert system.console == "tmux"


def test_syntax_problems_of_the_file_are_kept() -> None:
    system = parse_system_conf('switch_list="public"\n  ports_public="em0"\n')
    assert [p.line for p in system.problems] == [2]
    assert system.switch("public").ports == ()  # vm-bhyve ignores the indented line
