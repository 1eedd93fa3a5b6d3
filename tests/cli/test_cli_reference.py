"""The command line as a reference: `--version`, a summary and help for every command and
option, exit statuses in each command's help, and `apply`'s closing summary."""

from __future__ import annotations

import argparse
import json
from importlib.metadata import version

import pytest
from e2e_helpers import HANDBOOK_SPEC, CliRig

from reconciler.cli import build_parser, main
from reconciler.specschema import guest_schema


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


COMMANDS = sorted(subcommands())


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit:
        main(["--version"])
    assert exit.value.code == 0
    assert capsys.readouterr().out == f"bhyve-reconciler {version('bhyve-reconciler')}\n"


def test_every_command_has_a_one_line_summary_in_the_main_help() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    summaries = {c.dest: c.help for c in sub._choices_actions}
    assert sorted(summaries) == COMMANDS
    assert all(text and "\n" not in text for text in summaries.values()), summaries
    for name in ("validate", "plan", "apply", "run", "status", "logs", "console", "schema"):
        assert name in COMMANDS


@pytest.mark.parametrize("name", COMMANDS)
def test_every_option_of_every_command_has_help(name: str) -> None:
    parser = subcommands()[name]
    for action in parser._actions:
        assert action.help, (name, action.dest)
    top = build_parser()
    assert all(action.help for action in top._actions if action.dest != "command")


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_s_help_lists_its_exit_statuses(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main([name, "--help"])
    text = capsys.readouterr().out
    statuses = text.split("exit status:\n", 1)[1].splitlines()
    codes = [line.split()[0] for line in statuses if line.strip()]
    assert "0" in codes and codes[-1] == "2"  # and a usage error's 2, last
    assert statuses[-1].strip() == "2  the command line is wrong (usage error)"


def test_the_documented_exit_statuses_of_plan_are_what_it_returns() -> None:
    text = subcommands()["plan"].format_help()
    assert "0  converged: nothing to do" in text
    assert "2  changes are pending" in text


def test_apply_ends_with_a_summary(rig: CliRig) -> None:
    rig.write_spec("guestname", HANDBOOK_SPEC.replace('state = "stopped"\n', ""))

    first = rig.cli("apply")
    again = rig.cli("apply")

    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [
        "+ load kernel module vmm",
        "+ load kernel module nmdm",
        "+ load kernel module if_bridge",
        "~ set net.link.tap.up_on_open=1 (now 0)",
        "+ create bridge0",
        "+ create tap0 for guest guestname",
        "~ add igb0 to bridge0",
        "~ add tap0 to bridge0 for guest guestname",
        "~ bring bridge0 up",
        "+ create disk image /vm/guestname/guest.img (16G, sparse) for guest guestname",
        "+ start guest guestname: pending (guests are started and stopped by "
        "`bhyve-reconciler run`)",
        "10 changed, 1 pending for run, 0 failed",
    ]
    assert again.stdout.splitlines()[-1] == "0 changed, 1 pending for run, 0 failed"


def test_apply_on_a_converged_host_says_so_and_sums_up(rig: CliRig) -> None:
    rig.write_spec("guestname", HANDBOOK_SPEC)
    assert rig.cli("apply").returncode == 0

    again = rig.cli("apply")

    assert again.stdout.splitlines() == [
        "converged: nothing to do",
        "0 changed, 0 pending for run, 0 failed",
    ]


def test_run_takes_log_level_and_refuses_an_unknown_one(capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(["run", "--log-level", "debug"])
    assert args.log_level == "debug"
    assert build_parser().parse_args(["run"]).log_level == "info"
    with pytest.raises(SystemExit) as exit:
        build_parser().parse_args(["run", "--log-level", "chatty"])
    assert exit.value.code == 2
    assert "invalid choice: 'chatty'" in capsys.readouterr().err


def test_the_cli_prints_the_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == guest_schema()
