"""The JSON Schema of a guest file (`bhyve-reconciler schema`) and the parser agree.

Every example spec validates; every bad input of the spec tests is refused, but for the few a
JSON Schema cannot express (listed in NOT_EXPRESSIBLE, each with why, and checked to be still
accepted so the list stays honest); every documented key is in the schema with its type,
default and meaning; and for the values of each code rule, what the parser accepts the schema
accepts, and what it refuses the schema refuses but for the arithmetic a pattern cannot do.
"""

from __future__ import annotations

import json
import re
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from bad_specs import CASES
from hostile_values import INVISIBLE, PLACES, toml_string
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft4Validator
from spec_examples import conditions, example_table

from reconciler import schemapatterns as pat
from reconciler.guestfile import parse_guest, parse_guest_text
from reconciler.guestkeys import GUEST
from reconciler.schema import SubTable, TableArray, TableMap, documented_keys
from reconciler.specschema import guest_schema

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "conf.d").glob("*.toml"))
DISK = '[[disk]]\npath = "/vm/a.img"\n'

# Bad inputs of the spec tests that a JSON Schema cannot refuse, and why.
NOT_EXPRESSIBLE = {
    "passthru-twice": '"2/0/0" and "02/0/0" are one device spelt two ways',
    "disk-shared-zvol": "a path and a zvol naming one device",
    "pci-full-mixed": "the PCI slots are shared by disks, NICs and passthru together",
}


@cache
def schema() -> dict[str, Any]:
    return guest_schema()


def ecma_patterns(node: Any) -> Any:
    """The schema with each `pattern` read as JSON Schema defines it (ECMA-262) and the
    editors the schema is for read it (VS Code: ECMA-262; Taplo: Rust's regex): `$` is the end
    of the value. jsonschema reads patterns with Python's re.search, whose `$` also matches
    before a final newline; `\\Z` is Python's end of the value."""
    if isinstance(node, list):
        return [ecma_patterns(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: ecma_patterns(value) for key, value in node.items()}
    pattern = node.get("pattern")
    if isinstance(pattern, str) and pattern.endswith("$") and not pattern.endswith("\\$"):
        out["pattern"] = pattern[:-1] + "\\Z"
    return out


@cache
def validator() -> Draft4Validator:
    Draft4Validator.check_schema(schema())
    return Draft4Validator(ecma_patterns(schema()))


def valid(document: Any) -> bool:
    return validator().is_valid(document)


def parses(document: Any) -> bool:
    return parse_guest(document, file="/c/web.toml", stem="web")[0] is not None


def test_the_schema_is_draft_4_and_survives_json() -> None:
    assert schema()["$schema"] == "http://json-schema.org/draft-04/schema#"
    assert json.loads(json.dumps(schema())) == schema()


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_every_example_spec_validates(path: Path) -> None:
    errors = [e.message for e in validator().iter_errors(tomllib.loads(path.read_text()))]
    assert errors == []


def test_the_readme_guest_validates() -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```toml\n(.*?)```", readme, re.S)
    guests = [b for b in blocks if "[[disk]]" in b]
    assert guests
    for block in guests:
        assert valid(tomllib.loads(block)), block


@pytest.mark.parametrize("when", conditions(GUEST), ids=str)
def test_every_documented_example_validates(when: dict[str, Any]) -> None:
    document = example_table(GUEST, when=when)
    assert parses(document)
    assert [e.message for e in validator().iter_errors(document)] == []


@pytest.mark.parametrize(("case", "text"), [c[:2] for c in CASES], ids=[c[0] for c in CASES])
def test_every_bad_input_of_the_spec_tests_is_refused(case: str, text: str) -> None:
    document = tomllib.loads(text)
    if case in NOT_EXPRESSIBLE:
        # Still accepted: when a schema learns to refuse it, this list must shrink.
        assert valid(document), f"{case} is refused now: take it out of NOT_EXPRESSIBLE"
        return
    assert not valid(document)


@pytest.mark.parametrize("char", INVISIBLE, ids=lambda c: f"U+{ord(c):04X}")
@pytest.mark.parametrize(("place", "key"), PLACES, ids=[k for _p, k in PLACES])
def test_invisible_characters_are_refused_everywhere(place, key: str, char: str) -> None:  # type: ignore[no-untyped-def]
    value = {"name": "web", "nic[0].bridge": "bridge0", "nic[0].tap": "tap0"}.get(key, "/vm/b")
    value = {"grub.root": "hd0,msdos1", "disk[0].zvol": "tank/vm"}.get(key, value)
    value = "3" if key == "loader_env.autoboot_delay" else value
    assert valid(tomllib.loads(place(toml_string(value))))
    assert not valid(tomllib.loads(place(toml_string(value + char))))


@pytest.mark.parametrize(
    ("value", "ok"),
    [("1e308", False), ("inf", False), ("3601", False), ('"2h"', False), ('"99999999h"', False),
     ('"0s"', False), ('"0.0h0m"', False), ("0", False), ('"1h"', True), ("3600", True),
     ('"59m60s"', True), ('"1.5s"', True), ('"500ms"', True)],
)  # fmt: skip
def test_stop_timeout_is_capped_at_an_hour(value: str, ok: bool) -> None:
    text = f"stop_timeout = {value}\n" + DISK
    assert parses(tomllib.loads(text)) is ok
    assert valid(tomllib.loads(text)) is ok


def test_the_cap_is_a_sum_a_pattern_cannot_check() -> None:
    """Each part is at most an hour, but not their sum: the parser refuses what the schema
    lets through, and only that."""
    document = tomllib.loads('stop_timeout = "1h0m1s"\n' + DISK)
    assert not parses(document) and valid(document)


def schema_at(path: str) -> dict[str, Any]:
    """The schema of a documented key path (`disk[].size`, `loader_env.<name>`)."""
    node: dict[str, Any] = schema()
    for part in path.split("."):
        name = part.removesuffix("[]")
        if name == "<name>":
            node = next(iter(node["patternProperties"].values()))
        else:
            node = node["properties"][name]
        if part.endswith("[]"):
            node = node["items"]
    return node


_JSON_TYPES = {
    "string": "string",
    "integer": "integer",
    "boolean": "boolean",
    "array": "array",
    "table": "object",
    "array of tables": "array",
    "string or number": ["string", "number"],
}


@pytest.mark.parametrize("row", documented_keys(GUEST), ids=lambda r: r.path)
def test_every_documented_key_is_in_the_schema_with_its_type_default_and_meaning(row) -> None:  # type: ignore[no-untyped-def]
    node = schema_at(row.path)
    assert node["type"] == _JSON_TYPES[row.toml]
    assert row.key.meaning.lower().rstrip(".") in node["description"].lower()
    if row.default not in ("none", "required") and row.key.default_doc is None:
        assert json.dumps(node["default"]) == row.default or (
            isinstance(node["default"], bool) and row.default in ("true", "false")
        )
    if not isinstance(row.key.type, SubTable | TableArray | TableMap):
        assert node["examples"] == [row.key.example]


def test_the_schema_has_no_key_the_description_does_not() -> None:
    documented = {row.path for row in documented_keys(GUEST)}

    def paths(node: dict[str, Any], prefix: str = "") -> set[str]:
        found = set()
        for name, child in node.get("properties", {}).items():
            path = f"{prefix}{name}"
            found.add(path)
            if child.get("type") == "object":
                found |= paths(child, f"{path}.")
                for sub in child.get("patternProperties", {}).values():
                    found.add(f"{path}.<name>")
                    found |= paths(sub, f"{path}.<name>.")
            elif child.get("type") == "array" and "properties" in child.get("items", {}):
                found |= paths(child["items"], f"{path}[].")
        return found

    assert paths(schema()) == documented


WRONG_TYPES = [True, 7, 1.5, "text", ["a"], {"a": "b"}]


def key_node(path: str) -> dict[str, Any]:
    """The schema of the key at a documented path (`disk[].zvol`, `loader_env.<name>`)."""
    node = schema()
    for part in path.split("."):
        if part == "<name>":
            node = next(iter(node["patternProperties"].values()))
            continue
        node = node["properties"][part.removesuffix("[]")]
        if part.endswith("[]"):
            node = node["items"]
    return node


def of_its_type(path: str, value: Any) -> bool:
    """Whether `value` has a JSON type the key takes: then it is a wrong value, not a wrong
    type, and the value-by-value tests below are where the two are compared."""
    node = key_node(path)
    return "type" in node and Draft4Validator({"type": node["type"]}).is_valid(value)


@pytest.mark.parametrize("row", documented_keys(GUEST), ids=lambda r: r.path)
def test_a_wrongly_typed_value_is_refused_by_both(row) -> None:  # type: ignore[no-untyped-def]
    """Every key, in a document valid but for it, set to each value of another TOML type."""
    top = GUEST.key(row.path.split(".")[0].removesuffix("[]"))
    when = {top.only_with[0]: top.only_with[1]} if top.only_with else {}
    for wrong in WRONG_TYPES:
        if of_its_type(row.path, wrong):
            continue
        document = example_table(GUEST, when=when)
        target = document
        parts = row.path.split(".")
        for part in parts[:-1]:
            name = part.removesuffix("[]")
            target = target[name][0] if part.endswith("[]") else target[name]
        last = parts[-1].removesuffix("[]")
        if last == "<name>":
            last = next(iter(target))
        if row.path == "disk[].zvol":
            target.pop("path")
        target[last] = wrong
        if parses(document):
            continue  # e.g. an integer where a duration in seconds is fine
        assert not valid(document), (row.path, wrong)


# -- value by value: the parser and the schema on generated values ---------------------------


def value_document(key: str, value: Any) -> dict[str, Any]:
    where = {
        "memory": ({}, "memory"),
        "name": ({}, "name"),
        "console": ({}, "console"),
        "stop_timeout": ({}, "stop_timeout"),
        "disk.path": ({}, None),
        "disk.zvol": ({}, None),
        "nic.tap": ({}, None),
        "nic.bridge": ({}, None),
        "nic.mac": ({}, None),
        "graphics.listen": ({"loader": "uefi"}, None),
        "grub.root": ({"loader": "grub"}, None),
        "passthru": ({}, "passthru"),
        "disk.options": ({}, None),
    }
    base, top = where[key]
    document: dict[str, Any] = {**base, "disk": [{"path": "/vm/a.img"}]}
    if top is not None:
        document[top] = value
    elif key.startswith("disk."):
        field = key.split(".")[1]
        document["disk"] = [{field: value}]
    elif key.startswith("nic."):
        document["nic"] = [{key.split(".")[1]: value}]
    else:
        table, field = key.split(".")
        document[table] = {field: value}
    return document


def agree(key: str, value: Any) -> None:
    document = value_document(key, value)
    assert parses(document) == valid(document), (key, value)


CHARS = st.sampled_from([*"/a.-_,% \t\n\x00:é09", "..", "\u200b", "\u00a0"])


def test_a_value_with_a_newline_after_it_is_refused_as_the_editors_read_the_pattern() -> None:
    """Found by test_paths: Python's `$` also matches before a final newline."""
    for key, value in [("disk.path", "/a\n"), ("console", "/dev/nmdm0A\n"), ("name", "web\n")]:
        assert not parses(value_document(key, value)), (key, value)
        assert not valid(value_document(key, value)), (key, value)


@settings(max_examples=150)
@given(st.lists(CHARS, max_size=12).map("".join))
def test_paths(value: str) -> None:
    agree("disk.path", value)
    agree("console", value)


@settings(max_examples=150)
@given(st.lists(st.sampled_from([*"aZ09_.-:/@, ", ".."]), max_size=10).map("".join))
def test_names_zvols_and_interfaces(value: str) -> None:
    for key in ("name", "disk.zvol", "nic.tap", "nic.bridge", "grub.root"):
        agree(key, value)


@settings(max_examples=150)
@given(st.from_regex(r"[0-9]{0,21}[KMGTkmgtB]?", fullmatch=True))
def test_sizes(value: str) -> None:
    agree("memory", value)


@settings(max_examples=150)
@given(st.from_regex(r"[0-9a-fA-F:,]{0,19}", fullmatch=True))
def test_mac_addresses(value: str) -> None:
    agree("nic.mac", value)


@settings(max_examples=150)
@given(
    st.from_regex(r"[a-z0-9.,-]{0,12}:[0-9a-z]{0,6}", fullmatch=True)
    | st.from_regex(r"([0-9]{1,4}\.){3}[0-9]{1,4}:[0-9]{1,6}", fullmatch=True)
)
def test_listen_addresses(value: str) -> None:
    agree("graphics.listen", value)


@settings(max_examples=150)
@given(st.lists(st.from_regex(r"[0-9]{1,4}/[0-9]{1,3}/[0-9]{1,3}", fullmatch=True), max_size=3))
def test_passthru(devices: list[str]) -> None:
    if len({tuple(int(n) for n in d.split("/")) for d in devices}) < len(devices):
        return  # one device twice: see NOT_EXPRESSIBLE
    agree("passthru", devices)


OPTIONS = st.sampled_from(
    ["nocache", "direct", "ro", "nodelete", "sync", "RO", "sectorsize=512", "sectorsize=4096",
     "sectorsize=0512/4096", "sectorsize=4096/512", "sectorsize=1000", "sectorsize=65536/65536",
     "sectorsize=131072"]
)  # fmt: skip


@settings(max_examples=150)
@given(st.lists(OPTIONS, max_size=6))
def test_disk_options(options: list[str]) -> None:
    agree("disk.options", options)


@settings(max_examples=150)
@given(st.from_regex(r"([0-9]{1,4}(\.[0-9]{1,2})?(h|m|s|ms)){1,3}", fullmatch=True))
def test_durations(value: str) -> None:
    document = value_document("stop_timeout", value)
    if valid(document) and not parses(document):
        # Only the sum of the parts may be over the cap (see the sum test above).
        seconds = sum(
            float(n) * {"h": 3600, "m": 60, "s": 1, "ms": 0.001}[u]
            for n, u in re.findall(r"([0-9.]+)(ms|h|m|s)", value)
        )
        assert seconds > 3600, value
    else:
        agree("stop_timeout", value)


@pytest.mark.parametrize(
    ("low", "high"), [(0, 0), (0, 9), (1, 65535), (0, 255), (7, 1234), (1024, 99999)]
)
def test_range_patterns_match_exactly_their_numbers(low: int, high: int) -> None:
    plain = re.compile(f"^{pat.range_pattern(low, high)}$")
    padded = re.compile(f"^{pat.range_pattern(low, high, zeros=True, width=6)}$")
    for n in range(0, high + 1500):
        assert bool(plain.match(str(n))) == (low <= n <= high), n
        assert bool(padded.match(f"{n:06d}")) == (low <= n <= high), n
    assert not plain.match(f"0{low}")


def test_parse_guest_text_and_the_schema_read_the_same_toml() -> None:
    text = '#:schema ./guest.schema.json\nname = "web"\n' + DISK
    assert parse_guest_text(text, file="/c/web.toml", stem="web")[0] is not None
    assert valid(tomllib.loads(text))
