"""The one description of every key agrees with the parsers, both ways.

Every documented key, set to its documented example, is read into the spec (and written back
by the serializer); every key the parsers look at is documented; every other key is refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from spec_examples import conditions, example_table, variants

from reconciler.config import CONFIG, DaemonConfig, parse_config
from reconciler.guestfile import guest_to_toml, parse_guest
from reconciler.guestkeys import GUEST
from reconciler.schema import (
    SubTable,
    TableArray,
    TableMap,
    documented_keys,
)
from reconciler.spec import GuestSpec

GUEST_KEYS = {row.path for row in documented_keys(GUEST)}
CONFIG_KEYS = {row.path for row in documented_keys(CONFIG)}


# Every `only_with` condition with every at-most-one alternative.
CASES = [(when, prefer) for when in conditions(GUEST) for prefer in variants(GUEST)]
CASE_IDS = [f"{when}-{sorted(prefer)}" for when, prefer in CASES]


def test_every_key_has_a_one_line_meaning_and_a_valid_example() -> None:
    for row in documented_keys(GUEST) + documented_keys(CONFIG):
        assert row.key.meaning and "\n" not in row.key.meaning, row.path
        scalar = not isinstance(row.key.type, SubTable | TableArray | TableMap)
        assert (row.key.example is not None) == scalar, row.path
        assert row.toml and row.default, row.path


@pytest.mark.parametrize(("when", "prefer"), CASES, ids=CASE_IDS)
def test_every_documented_guest_key_is_read_and_written_back(
    when: dict[str, Any], prefer: frozenset[str]
) -> None:
    document = example_table(GUEST, when=when, prefer=prefer)
    spec, errors = parse_guest(document, file="/c/web.toml", stem="web")
    assert errors == []
    assert spec is not None
    # Each example differs from its default, so the serializer writes every key back, with
    # the documented spelling: the parser read each one into the spec.
    written = {k: v for k, v in document.items() if v != GUEST.default(GUEST.key(k))}
    assert guest_to_toml(spec) == written


def test_the_examples_cover_every_documented_guest_key() -> None:
    covered: set[str] = set()
    for when, prefer in CASES:
        covered |= set(paths(example_table(GUEST, when=when, prefer=prefer), GUEST_KEYS))
    assert covered == GUEST_KEYS


def test_every_documented_config_key_is_read() -> None:
    document = example_table(CONFIG)
    assert set(paths(document, CONFIG_KEYS)) == CONFIG_KEYS
    config, errors = parse_config_tables(document)
    assert errors == []
    for key in CONFIG.keys:
        assert getattr(config, key.target) != getattr(DaemonConfig(), key.target), key.name


def parse_config_tables(document: dict[str, Any]) -> tuple[DaemonConfig, list[Any]]:
    import tomli_w

    return parse_config(tomli_w.dumps(document), file="/etc/reconciler.toml")


def paths(document: Any, documented: set[str], prefix: str = "") -> Iterator[str]:
    """The documented-style path of every key in `document`: indexes become `[]`, names in
    a table of free names become `<name>`."""
    if isinstance(document, list):
        for item in document:
            yield from paths(item, documented, prefix + "[]")
        return
    if not isinstance(document, dict):
        return
    for name, value in document.items():
        free = f"{prefix}.<name>" if prefix else "<name>"
        path = free if free in documented else (f"{prefix}.{name}" if prefix else name)
        yield path
        yield from paths(value, documented, path)


class Recording(dict[str, Any]):
    """A parsed table that remembers which keys the parser asked for, by documented path."""

    def __init__(self, data: dict[str, Any], prefix: str, seen: set[str], documented: set[str]):
        super().__init__()
        self.prefix = prefix
        self.seen = seen
        self.documented = documented
        for name, value in data.items():
            super().__setitem__(name, wrap(value, self._path(name), seen, documented))

    def _path(self, name: str) -> str:
        free = f"{self.prefix}.<name>"
        if free in self.documented:
            return free
        return f"{self.prefix}.{name}" if self.prefix else name

    def __getitem__(self, name: str) -> Any:
        self.seen.add(self._path(name))
        return super().__getitem__(name)

    def __contains__(self, name: object) -> bool:
        self.seen.add(self._path(str(name)))
        return super().__contains__(name)

    def get(self, name: str, default: Any = None) -> Any:
        self.seen.add(self._path(name))
        return super().get(name, default)


def wrap(value: Any, path: str, seen: set[str], documented: set[str]) -> Any:
    if isinstance(value, dict):
        return Recording(value, path, seen, documented)
    if isinstance(value, list):
        return [wrap(item, path + "[]", seen, documented) for item in value]
    return value


@pytest.mark.parametrize(("when", "prefer"), CASES, ids=CASE_IDS)
def test_the_guest_parser_reads_only_documented_keys(
    when: dict[str, Any], prefer: frozenset[str]
) -> None:
    seen: set[str] = set()
    document = wrap(example_table(GUEST, when=when, prefer=prefer), "", seen, GUEST_KEYS)
    spec, errors = parse_guest(document, file="/c/web.toml", stem="web")
    assert spec is not None, errors
    assert seen, "the recording saw nothing"
    assert seen <= GUEST_KEYS, seen - GUEST_KEYS


def test_the_config_parser_reads_only_documented_keys() -> None:
    from reconciler.config import CONFIG as spec
    from reconciler.tomlreader import Reader, Section, read_table

    seen: set[str] = set()
    document = wrap(example_table(spec), "", seen, CONFIG_KEYS)
    reader = Reader("/etc/reconciler.toml")
    read_table(Section(reader, document, "", spec.known), spec)
    assert reader.errors == []
    assert seen and seen <= CONFIG_KEYS, seen - CONFIG_KEYS


NAMES = st.from_regex(re.compile(r"[a-z_]{1,12}"), fullmatch=True)
TABLES = st.sampled_from(["", "install", "uefi", "graphics", "grub", "disk", "nic"])


@given(NAMES, TABLES)
def test_an_undocumented_key_is_refused_by_name(name: str, table: str) -> None:
    path = f"{table}.{name}" if table and table not in ("disk", "nic") else name
    if table in ("disk", "nic"):
        path = f"{table}[].{name}"
    if path in GUEST_KEYS:
        return
    document: dict[str, Any] = {"disk": [{"path": "/vm/a.img"}]}
    if table in ("disk", "nic"):
        document[table] = [{"path": "/vm/a.img", name: 1} if table == "disk" else {name: 1}]
    elif table:
        document[table] = {name: 1}
        if table == "install":
            document[table]["iso"] = "/i.iso"
    else:
        document[name] = 1
    _spec, errors = parse_guest(document, file="/c/web.toml", stem="web")
    key = path.replace("[]", "[0]")
    assert any(e.key == key and e.message.startswith("unknown key") for e in errors), errors


def test_documented_defaults_are_the_dataclass_defaults() -> None:
    rows = {row.path: row for row in documented_keys(GUEST)}
    assert rows["cpus"].default == "1"
    assert rows["memory"].default == f'"{GuestSpec(name="x").memory}"'
    assert rows["state"].default == '"running"'
    assert rows["disk[].emulation"].default == '"virtio-blk"'
    assert rows["install.iso"].default == "required"
    assert rows["disk[].path"].condition == "exactly one of `path`, `zvol`"
    assert rows["graphics"].condition == 'only with loader = "uefi"'
    config = {row.path: row for row in documented_keys(CONFIG)}
    assert config["stop_timeout"].default == '"2m"'
    assert config["vmm_dir"].default == '"/dev/vmm"'
