"""`plan` and `apply` exit statuses and output formats, and the refusal to touch a non-FreeBSD
host unless asked to simulate one."""

from __future__ import annotations

import json

from e2e_helpers import HANDBOOK_SPEC, OBSERVE, CliRig

# The Handbook's host preparation, in plan order, as FreeBSD commands (None: file operation).
HANDBOOK_ARGV = [
    ["kldload", "vmm"],
    ["kldload", "nmdm"],
    ["kldload", "if_bridge"],  # the simulated GENERIC kernel has if_tuntap built in
    ["sysctl", "net.link.tap.up_on_open=1"],
    ["ifconfig", "bridge0", "create"],
    ["ifconfig", "tap0", "create"],
    ["ifconfig", "bridge0", "addm", "igb0"],
    ["ifconfig", "bridge0", "addm", "tap0"],
    ["ifconfig", "bridge0", "up"],
    None,
]


def test_plan_exits_2_with_pending_changes_and_changes_nothing(rig: CliRig) -> None:
    rig.write_spec("guestname", HANDBOOK_SPEC)

    proc, ran = rig.logged("plan")

    assert proc.returncode == 2, proc.stderr
    assert ran == OBSERVE
    lines = proc.stdout.splitlines()
    assert len(lines) == len(HANDBOOK_ARGV)
    assert "+ create tap0 for guest guestname" in lines
    assert "~ add tap0 to bridge0 for guest guestname" in lines
    assert lines[-1].startswith("+ create disk image /vm/guestname/guest.img (16G")
    assert not rig.sim.path("/vm/guestname/guest.img").exists()
    assert "tap0" not in rig.sim.interfaces()


def test_plan_json_lists_the_actions_with_their_argv(rig: CliRig) -> None:
    rig.write_spec("guestname", HANDBOOK_SPEC)

    proc = rig.cli("plan", "--json")

    assert proc.returncode == 2, proc.stderr
    actions = json.loads(proc.stdout)
    assert [a["argv"] for a in actions] == HANDBOOK_ARGV
    assert [a["sign"] for a in actions] == ["+", "+", "+", "~", "+", "+", "~", "~", "~", "+"]
    by_argv = {tuple(a["argv"] or ()): a for a in actions}
    assert by_argv[("ifconfig", "tap0", "create")]["guest"] == "guestname"
    assert by_argv[("ifconfig", "bridge0", "addm", "igb0")]["guest"] is None  # the config's


def test_plan_exits_0_once_apply_converged_the_host(rig: CliRig) -> None:
    rig.write_spec("guestname", HANDBOOK_SPEC)
    assert rig.cli("apply").returncode == 0

    text = rig.cli("plan")
    as_json = rig.cli("plan", "--json")

    assert (text.returncode, text.stdout) == (0, "converged: nothing to do\n")
    assert as_json.returncode == 0
    assert json.loads(as_json.stdout) == []


def test_off_freebsd_plan_and_apply_refuse_without_simulate(rig: CliRig) -> None:
    rig.write_spec("guestname", HANDBOOK_SPEC)

    for command in ("plan", "apply"):
        rig.sim.clear_commands()
        proc = rig.cli(command, simulate=False)

        assert proc.returncode == 1
        assert proc.stdout == ""
        assert "not FreeBSD" in proc.stderr
        assert "--simulate" in proc.stderr
        assert rig.sim.commands() == []
    assert not (rig.state_dir / "ledger.json").exists()
