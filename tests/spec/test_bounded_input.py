"""Hostile guest files and daemon configs: bounded before tomllib sees them (DESIGN.md rule 8).

The loader refuses, at a line and column, what would make tomllib recurse without bound or take
quadratic time and memory; whatever the bytes, the guest loader gives a spec or errors, never
another exception, in bounded memory.
"""

from __future__ import annotations

import functools
import re
import tomllib
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler import tomlload
from reconciler.config import DaemonConfig, parse_config
from reconciler.errors import SpecError
from reconciler.guestfile import parse_guest_text
from reconciler.specdir import ConfDir
from reconciler.tomlload import (
    MAX_DEPTH,
    MAX_KEY_LENGTH,
    MAX_KEY_PARTS,
    MAX_SCALAR_LENGTH,
    MAX_TOML_BYTES,
    load_toml,
)

FILE = "/conf.d/evil.toml"
DISK = '[[disk]]\npath = "/vm/a.img"\n'
DEEP_ARRAY = "a = " + "[" * 5000 + "]" * 5000 + "\n"  # 10 KB
LONG_DOTTED_KEY = "x" + ".x" * 19999 + " = 1\n"  # 40 KB
FEW_MB = 4 << 20
LINE_COLUMN = re.compile(r"line [0-9]+, column [0-9]+")


@contextmanager
def peak_memory() -> Iterator[list[int]]:
    """The peak of traced allocations inside the block, in bytes (as result[0])."""
    result: list[int] = []
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        yield result
    finally:
        result.append(tracemalloc.get_traced_memory()[1])
        if started:
            tracemalloc.stop()


@pytest.fixture
def no_tomllib(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail if the text reaches tomllib: the refusal must come from the scan before it."""

    def refuse(text: str) -> dict[str, Any]:
        raise AssertionError("tomllib was given a text the scan should have refused")

    # tomlload calls `tomllib.loads`: the module attribute is what it reaches.
    monkeypatch.setattr(tomllib, "loads", refuse)


def only_error(source: str | bytes) -> SpecError:
    spec, errors = parse_guest_text(source, file=FILE, stem="evil")
    assert spec is None
    [error] = errors
    assert error.file == FILE
    return error


@pytest.mark.usefixtures("no_tomllib")
def test_arrays_nested_5000_deep_are_refused_at_the_bracket_too_deep() -> None:
    with peak_memory() as peak:
        error = only_error(DEEP_ARRAY.encode())
    # `a` is level 1, the first 15 brackets levels 2-16; the 16th bracket is column 20.
    assert error.key == "line 1, column 20"
    assert f"nested deeper than {MAX_DEPTH} levels" in error.message
    assert peak[0] < FEW_MB


@pytest.mark.usefixtures("no_tomllib")
def test_a_dotted_key_of_20000_parts_is_refused_at_the_part_too_many() -> None:
    with peak_memory() as peak:
        error = only_error(LONG_DOTTED_KEY.encode())
    assert error.key == f"line 1, column {2 * MAX_KEY_PARTS + 1}"
    assert f"more than {MAX_KEY_PARTS} parts" in error.message
    assert peak[0] < FEW_MB


@pytest.mark.usefixtures("no_tomllib")
def test_the_daemon_config_goes_through_the_same_loader() -> None:
    for text in (DEEP_ARRAY, LONG_DOTTED_KEY):
        config, errors = parse_config(text, file="/etc/reconciler.toml")
        assert config == DaemonConfig()
        assert [LINE_COLUMN.fullmatch(e.key) is not None for e in errors] == [True]


def test_a_hostile_file_in_conf_d_is_invalid_and_the_others_stay_valid(tmp_path: Path) -> None:
    for name, text in (("deep", DEEP_ARRAY), ("dotted", LONG_DOTTED_KEY), ("good", DISK)):
        path = tmp_path / f"{name}.toml"
        path.write_text(text)
        path.chmod(0o644)
    snapshot = ConfDir(tmp_path, euid=1000).scan()
    assert set(snapshot.guests) == {"good"}
    assert {Path(p.file).stem: p.key for p in snapshot.problems} == {
        "deep": "line 1, column 20",
        "dotted": f"line 1, column {2 * MAX_KEY_PARTS + 1}",
    }
    assert snapshot.files[str(tmp_path / "deep.toml")].status == "invalid"


@pytest.mark.parametrize(
    ("text", "fragment", "key"),
    [
        ("[" + ".".join("t" * 9) + "]\n", "parts", "line 1, column 18"),
        ("[[a.b.c.d.e.f.g.h]]\ni.j.k.l.m.n.o = [1]\n", "nested deeper", "line 2, column 17"),
        ("a = " + "{b = " * 16 + "1" + "}" * 16 + "\n", "nested deeper", None),
        ("a = [{b = [{c = [{d = [[[[[[[[[[[[1]]]]]]]]]]]]}]}]}]\n", "nested deeper", None),
        ("[" + "a." * 4 + "a]\n" + "b.c.d.e.f.g.h.i.j.k.l.m = 1\n", "parts", "line 2, column 17"),
        ("[a.b.c.d.e.f.g.h]\ni = " + "{j = " * 8 + "1" + "}" * 8 + "\n", "nested deeper", None),
        (
            "k" * (MAX_KEY_LENGTH + 1) + " = 1\n",
            f"longer than {MAX_KEY_LENGTH}",
            "line 1, column 1",
        ),
        ("a.'" + "k" * MAX_KEY_LENGTH + "' = 1\n", f"longer than {MAX_KEY_LENGTH}", None),
        ("cpus = " + "1" * 5000 + "\n", f"longer than {MAX_SCALAR_LENGTH}", "line 1, column 8"),
        ("a = [\n  1,\n  " + "9" * 200 + "]\n", "longer", "line 3, column 3"),
    ],
)
def test_what_is_refused_and_where(text: str, fragment: str, key: str | None) -> None:
    data, errors = load_toml(text, file=FILE)
    assert data is None
    [error] = errors
    assert fragment in error.message
    assert LINE_COLUMN.fullmatch(error.key)
    if key is not None:
        assert error.key == key


@pytest.mark.parametrize(
    "text",
    [
        'a = "' + "[" * 100 + "{" * 100 + '"\n',
        "a = '" + "[" * 100 + "'\n",
        'a = """\n' + "[" * 100 + '\\"""\n' + "x.y." * 50 + '"""\n',
        "a = '''\n" + "[" * 100 + "''\n'''\n",
        'a = """a""""\nb = 1\n',
        "a = '''b'''''\nc = 1\n",
        "# " + "[" * 100 + "\nb = 1\n",
        "a = [ # [[[[[[[[[[[[[[[[[[[[[[[[[[[\n 1, # ]\n 2,\n]\n",
        '"' + ".".join("k" * 20) + '" = 1\n',
        "'a.b.c.d.e.f.g.h.i.j' = 1\n",
        "a = 1979-05-27 07:32:00\nb = [1979-05-27 07:32:00.5+01:00, 2]\n",
        "a = {b = 1979-05-27 07:32:00, c = 'x'}\n",
        '[ a . "b" . c ]\nd = [[], [[]], {}]\n',
        "[[a]]\n[[a]]\nb = 1\n",
        "a = [" + "[" * (MAX_DEPTH - 2) + "1" + "]" * (MAX_DEPTH - 1) + "\n",
        ".".join("k" * MAX_KEY_PARTS) + " = 1\n",
        "k" * MAX_KEY_LENGTH + " = 1\n",
        "a = " + "9" * MAX_SCALAR_LENGTH + "\n",
        "a = [1,2,]\nb = 0x" + "f" * 10 + "\n",
    ],
)
def test_brackets_dots_and_quotes_in_strings_and_comments_do_not_count(text: str) -> None:
    data, errors = load_toml(text, file=FILE)
    assert errors == []
    assert data == tomllib.loads(text)


def test_a_syntax_error_keeps_tomllib_s_message_and_place() -> None:
    _data, errors = load_toml('a = "unterminated\nb = [[[[[[[[[[[[[[[[[[[[[[[[[\n', file=FILE)
    assert [(e.key, e.message) for e in errors] == [
        ("line 1, column 18", "Illegal character '\\n'")
    ]


def test_size_and_encoding_are_checked_first() -> None:
    big = "#" * MAX_TOML_BYTES + "\n"
    for source in (big, big.encode()):
        error = only_error(source)
        assert (error.key, error.message) == ("(file)", f"larger than {MAX_TOML_BYTES} bytes")
    # Counted as UTF-8: a text of fewer characters can still be too many bytes.
    assert only_error("é" * (MAX_TOML_BYTES // 2 + 1)).key == "(file)"
    error = only_error(b"cpus = 1\n\xff")
    assert (error.key, error.message) == ("(file)", "not UTF-8 text (byte 9)")


def test_what_the_scan_misses_is_still_an_error_of_the_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Were the scan ever to let a text through, tomllib's own failures stay errors of the file.
    monkeypatch.setattr(tomlload, "MAX_DEPTH", 10**6)
    monkeypatch.setattr(tomlload, "MAX_SCALAR_LENGTH", 10**6)
    for text in (DEEP_ARRAY, "a = " + "1" * 5000 + "\n"):
        error = only_error(text)
        assert error.key == "(file)"
        assert error.message.startswith("cannot be read:")


def test_a_flood_of_errors_is_cut_short() -> None:
    text = "".join(f"unknown{i} = {i}\n" for i in range(1000)) + DISK
    spec, errors = parse_guest_text(text, file=FILE, stem="evil")
    assert spec is None
    assert len(errors) == 101
    assert (errors[-1].key, errors[-1].message) == ("(file)", "900 more errors are not shown")


# --- the scan agrees with tomllib on every TOML text --------------------------------------

KEYS = st.text(st.sampled_from("ab.-_ \"'[]#="), min_size=1, max_size=6)
STRINGS = st.text(st.sampled_from("ab[]{}#.,=\"'\\\n\t "), max_size=10)
SCALARS = st.integers(-(2**63), 2**63 - 1) | st.booleans() | STRINGS | st.floats(allow_nan=False)


@functools.cache
def nested(depth: int, tables: int) -> st.SearchStrategy[Any]:
    """TOML values nested up to `depth` arrays and tables, at most `tables` tables deep (so
    a table header never needs more than MAX_KEY_PARTS parts)."""
    if depth == 0:
        return SCALARS
    inner = nested(depth - 1, tables)
    options: list[st.SearchStrategy[Any]] = [SCALARS, st.lists(inner, max_size=3)]
    if tables > 0:
        options.append(st.dictionaries(KEYS, nested(depth - 1, tables - 1), max_size=3))
    return st.one_of(options)


def depth_of(value: Any, depth: int = 0) -> int:
    """How deep the scan counts `value`: a key is a level, and so is an array."""
    if isinstance(value, dict):
        return max([depth, *(depth_of(v, depth + 1) for v in value.values())])
    if isinstance(value, list):
        return max([depth + 1, *(depth_of(v, depth + 1) for v in value)])
    return depth


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(KEYS, nested(MAX_DEPTH + 3, MAX_KEY_PARTS - 1), max_size=4))
def test_the_scan_refuses_exactly_what_is_too_deep(document: dict[str, Any]) -> None:
    text = tomli_w.dumps(document)
    data, errors = load_toml(text, file=FILE)
    if depth_of(document) > MAX_DEPTH:
        assert data is None
        assert "nested deeper" in errors[0].message, text
    else:
        assert errors == [], text
        assert data == tomllib.loads(text)


# --- fuzzing the guest loader the way specdir calls it ------------------------------------

TOKENS = st.sampled_from(
    ["[", "]", "[[", "]]", "{", "}", '"', "'", '"""', "'''", "#", "\n", "=", ".", ",", " ",
     "a", "x.", "1", "\\", "disk", "path", '"/vm/a"', "1979-05-27", "é", "\u200b", "\r"]
)  # fmt: skip
TOKEN_SOUP = st.lists(TOKENS, max_size=200).map("".join)


def deep(opener: str, closer: str) -> st.SearchStrategy[str]:
    return st.integers(1, 6000).map(lambda n: "a = " + opener * n + "1" + closer * n + "\n")


HOSTILE = st.one_of(
    st.binary(max_size=2000),
    st.text(max_size=2000).map(str.encode),
    TOKEN_SOUP.map(str.encode),
    (TOKEN_SOUP.map(lambda t: DISK + t)).map(str.encode),
    deep("[", "]").map(str.encode),
    deep("{b = ", "}").map(str.encode),
    deep("[{c = ", "}]").map(str.encode),
    st.integers(1, 30000).map(lambda n: ("x" + ".x" * n + " = 1\n").encode()),
    st.integers(1, 30000).map(lambda n: ("[" + "a." * n + "a]\n").encode()),
    st.integers(1, 60000).map(lambda n: ("k" * n + " = 1\n").encode()),
    st.integers(1, 60000).map(lambda n: (DISK + 'memory = "' + "9" * n + 'M"\n').encode()),
    st.integers(1, 60000).map(lambda n: ("stop_timeout = " + "9" * n + "\n").encode()),
)


def parse_like_specdir(raw: bytes) -> tuple[Any, list[SpecError]]:
    return parse_guest_text(raw[: MAX_TOML_BYTES + 1], file=FILE, stem="evil")


@settings(
    max_examples=250,
    deadline=timedelta(seconds=5),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(HOSTILE)
def test_any_bytes_give_a_spec_or_errors_in_bounded_memory(raw: bytes) -> None:
    check_bounded(parse_like_specdir, raw)


def check_bounded(parse: Callable[[bytes], tuple[Any, list[SpecError]]], raw: bytes) -> None:
    with peak_memory() as peak:
        spec, errors = parse(raw)
    assert peak[0] < FEW_MB
    assert isinstance(errors, list)
    assert all(isinstance(e, SpecError) and e.file == FILE for e in errors)
    assert (spec is None) == bool(errors)
