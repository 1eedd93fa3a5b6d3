"""Values a hostile tester tried: invisible characters, absurd timeouts, endless digits."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hostile_values import DISK, INVISIBLE, PLACES, toml_string
from hypothesis import given
from hypothesis import strategies as st

from reconciler.config import parse_config
from reconciler.errors import SpecError
from reconciler.guestfile import parse_guest_text

FILE = "/conf.d/web.toml"
CONFIG = "/etc/reconciler.toml"


def errors_at(text: str, key: str) -> list[str]:
    spec, errors = parse_guest_text(text, file=FILE, stem="web")
    assert spec is None, f"accepted: {text!r}"
    return [e.message for e in errors if e.key == key]


@pytest.mark.parametrize("char", INVISIBLE, ids=lambda c: f"U+{ord(c):04X}")
@pytest.mark.parametrize(("place", "key"), PLACES, ids=[k for _p, k in PLACES])
def test_invisible_characters_never_reach_an_argv(
    place: Callable[[str], str], key: str, char: str
) -> None:
    value = {"name": "web", "nic[0].bridge": "bridge0", "nic[0].tap": "tap0"}.get(key, "/vm/b")
    if key == "grub.root":
        value = "hd0,msdos1"
    elif key == "disk[0].zvol":
        value = "tank/vm"
    elif key == "loader_env.autoboot_delay":
        value = "3"
    assert errors_at(place(toml_string(value + char)), key)


def test_the_message_names_the_invisible_character() -> None:
    [message] = errors_at(
        f"[[disk]]\npath = {toml_string('/vm/a' + chr(0x200B) + '.img')}\n", "disk[0].path"
    )
    assert "an invisible character (U+200B ZERO WIDTH SPACE)" in message
    [message] = errors_at(
        f"console = {toml_string('/dev/nmdm0' + chr(0xA0) + 'A')}\n" + DISK, "console"
    )
    assert "whitespace (U+00A0 NO-BREAK SPACE)" in message


def test_invisible_characters_in_the_daemon_config_paths_are_refused() -> None:
    _config, errors = parse_config(
        f"state_dir = {toml_string('/var/db/vm' + chr(0x200B))}\n", file=CONFIG
    )
    assert [e.key for e in errors] == ["state_dir"]


def test_visible_non_ascii_letters_in_paths_are_still_fine() -> None:
    spec, errors = parse_guest_text('[[disk]]\npath = "/vm/café/disk.img"\n', file=FILE, stem="web")
    assert errors == [] and spec is not None


def test_a_loader_variable_may_keep_its_ascii_spaces() -> None:
    text = '[loader_env]\n"kern.msg" = "hello world"\n' + DISK
    spec, errors = parse_guest_text(text, file=FILE, stem="web")
    assert errors == [] and spec is not None
    assert spec.loader_env == (("kern.msg", "hello world"),)


@pytest.mark.parametrize("value", ["1e308", "inf", '"2h"', "3601", '"1h0m1s"', '"99999999h"'])
def test_stop_timeout_is_capped_at_an_hour(value: str) -> None:
    [message] = errors_at(f"stop_timeout = {value}\n" + DISK, "stop_timeout")
    assert "1h" in message or "expected a duration" in message


def test_the_cap_message_names_the_cap() -> None:
    [message] = errors_at("stop_timeout = 1e308\n" + DISK, "stop_timeout")
    assert message == "must be at most 1h, got 1e+308"


def test_an_hour_exactly_is_allowed() -> None:
    spec, errors = parse_guest_text('stop_timeout = "1h"\n' + DISK, file=FILE, stem="web")
    assert errors == [] and spec is not None and spec.lifecycle.stop_timeout == 3600.0


@pytest.mark.parametrize(
    ("text", "key", "message"),
    [
        ("stop_timeout = 1e308\n", "stop_timeout", "must be at most 1h, got 1e+308"),
        ('stop_timeout = "2h"\n', "stop_timeout", 'must be at most 1h, got "2h"'),
        ("resync_interval = 1e308\n", "resync_interval", "must be at most 24h, got 1e+308"),
    ],
)
def test_the_daemon_config_caps_its_durations(text: str, key: str, message: str) -> None:
    config, errors = parse_config(text, file=CONFIG)
    assert [(e.key, e.message) for e in errors] == [(key, message)]
    assert config.stop_timeout == 120.0 and config.resync_interval == 30.0


@given(st.integers(20, 20000))
def test_endless_digits_are_an_error_not_a_crash(digits: int) -> None:
    number = "9" * digits
    cases = [
        (f'loader = "uefi"\n[graphics]\nlisten = "127.0.0.1:{number}"\n' + DISK, "graphics.listen"),
        (
            f'[[disk]]\npath = "/vm/a.img"\noptions = ["sectorsize={number}"]\n',
            "disk[0].options[0]",
        ),
        (f'memory = "{number}M"\n' + DISK, "memory"),
        (f'stop_timeout = "{number}s"\n' + DISK, "stop_timeout"),
    ]
    for text, key in cases:
        spec, errors = parse_guest_text(text, file=FILE, stem="web")
        assert spec is None
        assert all(isinstance(e, SpecError) and len(e.message) < 200 for e in errors)
        assert key in {e.key for e in errors}
