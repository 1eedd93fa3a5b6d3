"""The daemon's own config file: paths, timeouts and bridge uplinks."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.config import DaemonConfig, parse_config

FILE = "/usr/local/etc/bhyve-reconciler.toml"


def keys(text: str, file: str = FILE) -> dict[str, str]:
    _config, errors = parse_config(text, file=file)
    assert all(e.file == file for e in errors)
    return {e.key: e.message for e in errors}


def test_empty_file_gives_the_documented_defaults() -> None:
    config, errors = parse_config("", file=FILE)
    assert errors == []
    assert config == DaemonConfig()
    assert config.vmm_dir == Path("/dev/vmm")
    assert (config.stop_timeout, config.resync_interval) == (120.0, 30.0)


def test_every_key() -> None:
    config, errors = parse_config(
        """
conf_dir = "/etc/vms/conf.d"
state_dir = "/var/db/vms"
run_dir = "/var/run/vms"
vmm_dir = "/dev/vmm"
stop_timeout = "3m"
resync_interval = 10

[bridges.bridge0]
members = ["igb0"]

[bridges.bridge1]
members = ["em0", "lagg0.100"]
""",
        file=FILE,
    )
    assert errors == []
    assert config == DaemonConfig(
        conf_dir=Path("/etc/vms/conf.d"),
        state_dir=Path("/var/db/vms"),
        run_dir=Path("/var/run/vms"),
        vmm_dir=Path("/dev/vmm"),
        stop_timeout=180.0,
        resync_interval=10.0,
        bridges={"bridge0": ("igb0",), "bridge1": ("em0", "lagg0.100")},
    )


def test_relative_paths_follow_the_config_file() -> None:
    config, errors = parse_config(
        'conf_dir = "conf.d"\nstate_dir = "../state"\nrun_dir = "./run"\n',
        file="/srv/sim/etc/reconciler.toml",
    )
    assert errors == []
    assert config.conf_dir == Path("/srv/sim/etc/conf.d")
    assert config.state_dir == Path("/srv/sim/state")
    assert config.run_dir == Path("/srv/sim/etc/run")


def test_bridge_without_members_is_an_empty_uplink_list() -> None:
    config, errors = parse_config("[bridges.bridge0]\n", file=FILE)
    assert errors == []
    assert config.bridges == {"bridge0": ()}


@pytest.mark.parametrize(
    ("text", "key", "fragment"),
    [
        ('state_dri = "/x"\n', "state_dri", "did you mean `state_dir`?"),
        ("[bridges.bridge0]\nmember = []\n", "bridges.bridge0.member", "`members`"),
        ('stop_timeout = "0s"\n', "stop_timeout", "greater than zero"),
        ('resync_interval = "often"\n', "resync_interval", "expected a duration"),
        ("stop_timeout = true\n", "stop_timeout", "got a boolean"),
        ("conf_dir = 5\n", "conf_dir", "expected a string"),
        ('state_dir = "/var/db/my vms"\n', "state_dir", "whitespace"),
        ('state_dir = "/var/db/a,b"\n', "state_dir", "comma"),
        ('vmm_dir = ""\n', "vmm_dir", "must not be empty"),
        ('bridges = ["bridge0"]\n', "bridges", "[bridges.bridge0]"),
        ('bridges.bridge0 = "igb0"\n', "bridges.bridge0", "expected a table"),
        ('[bridges."Bridge 0"]\n', "bridges.Bridge 0", "interface name"),
        ('[bridges.bridge0]\nmembers = ["igb0,up"]\n', "bridges.bridge0.members[0]", "interface"),
        ("[bridges.bridge0]\nmembers = [1]\n", "bridges.bridge0.members[0]", "got an integer"),
        ('[bridges.bridge0]\nmembers = "igb0"\n', "bridges.bridge0.members", "expected an array"),
        ('[bridges.bridge0]\nmembers = ["bridge0"]\n', "bridges.bridge0.members[0]", "itself"),
        (
            '[bridges.bridge0]\nmembers = ["igb0"]\n[bridges.bridge1]\nmembers = ["igb0"]\n',
            "bridges.bridge1.members[0]",
            "already a member of bridges.bridge0",
        ),
        ("conf_dir = \n", "line 1, column 12", "Invalid value"),
    ],
)
def test_bad_config_names_the_key(text: str, key: str, fragment: str) -> None:
    found = keys(text)
    assert key in found, found
    assert fragment in found[key]


def test_bad_keys_keep_their_defaults_and_good_keys_still_apply() -> None:
    config, errors = parse_config('state_dir = "/var/db/a b"\nstop_timeout = "1m"\n', file=FILE)
    assert [e.key for e in errors] == ["state_dir"]
    assert config.state_dir == DaemonConfig().state_dir
    assert config.stop_timeout == 60.0


def test_all_errors_at_once() -> None:
    found = keys('conf = "/x"\nstop_timeout = "-"\n[bridges.bridge0]\nmembers = ["IGB0"]\n')
    assert set(found) == {"conf", "stop_timeout", "bridges.bridge0.members[0]"}


def test_timings_are_read_and_become_the_injected_timings() -> None:
    text = (
        '[timings]\ncrash_backoff = "50ms"\ncrash_backoff_max = "2s"\nstable_after = "1m"\n'
        'kill_grace = "250ms"\ndebounce = "5ms"\n'
    )
    config, errors = parse_config(text, file="/etc/d.toml")
    assert errors == []
    timings = config.timings.timings()
    assert (timings.backoff.base, timings.backoff.cap, timings.backoff.stable_after) == (
        0.05,
        2.0,
        60.0,
    )
    assert (timings.kill_grace, timings.conf_quiet) == (0.25, 0.005)


def test_timings_keys_are_checked_like_any_other() -> None:
    _, errors = parse_config('[timings]\nkill_grase = "1s"\n', file="/etc/d.toml")
    assert [(e.key, e.message) for e in errors] == [
        ("timings.kill_grase", "unknown key; did you mean `kill_grace`?")
    ]
    _, errors = parse_config('[timings]\ncrash_backoff = "-1s"\n', file="/etc/d.toml")
    assert [e.key for e in errors] == ["timings.crash_backoff"]
