"""Sizes and durations as people write them, and their canonical forms."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.units import (
    canonical_size,
    format_duration,
    format_size,
    parse_duration,
    parse_size,
)

K, M, G, T = 1 << 10, 1 << 20, 1 << 30, 1 << 40


@pytest.mark.parametrize(
    ("text", "expected"),
    [("16G", 16 * G), ("1024M", 1024 * M), ("1024m", 1024 * M), ("1k", K), ("2T", 2 * T)],
)
def test_parse_size_reads_binary_units(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    "text", ["", "16", "16GB", "16 G", " 16G", "1.5G", "-1G", "G", "16X", "0x10M", "\uff11\uff16G"]
)
def test_parse_size_rejects_what_bhyve_would_misread(text: str) -> None:
    with pytest.raises(ValueError, match="expected a size like 16G or 1024M"):
        parse_size(text)


def test_parse_size_refuses_leading_zeros_that_bhyve_reads_as_octal() -> None:
    with pytest.raises(ValueError):
        parse_size("0512M")


def test_parse_size_refuses_zero_and_absurd_sizes() -> None:
    with pytest.raises(ValueError, match="greater than zero"):
        parse_size("0G")
    with pytest.raises(ValueError, match="too large"):
        parse_size(f"{1 << 40}T")


def test_canonical_size_keeps_the_number_and_upper_cases_the_unit() -> None:
    assert canonical_size("1024m") == "1024M"
    assert canonical_size("1g") == "1G"
    with pytest.raises(ValueError):
        canonical_size("1024")


@pytest.mark.parametrize(
    ("n", "text"),
    [(17179869184, "16G"), (1073741824, "1G"), (1536 * M, "1536M"), (3 * K, "3K"), (T, "1T")],
)
def test_format_size_uses_the_largest_exact_unit(n: int, text: str) -> None:
    assert format_size(n) == text


def test_format_size_of_sizes_no_unit_holds() -> None:
    assert format_size(1025) == "1025B"
    assert format_size(0) == "0B"
    with pytest.raises(ValueError):
        format_size(-1)


@given(st.integers(min_value=1, max_value=1 << 22), st.sampled_from([K, M, G, T]))
def test_size_round_trip(count: int, unit: int) -> None:
    size = count * unit
    assert parse_size(format_size(size)) == size


@given(st.integers(min_value=1, max_value=1 << 20), st.sampled_from("kKmMgGtT"))
def test_size_text_round_trip(count: int, unit: str) -> None:
    text = f"{count}{unit}"
    assert format_size(parse_size(text)) == format_size(parse_size(text.upper()))
    assert parse_size(canonical_size(text)) == parse_size(text)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("500ms", 0.5),
        ("120s", 120.0),
        ("5m", 300.0),
        ("2h", 7200.0),
        ("1h30m", 5400.0),
        ("1h30m500ms", 5400.5),
        ("1.5s", 1.5),
        ("0s", 0.0),
        (90, 90.0),
        (0.25, 0.25),
    ],
)
def test_parse_duration(value: str | int | float, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(
    "value",
    ["", "120", "5 m", "m", "1m1h", "5mm", "-5s", "5S", "1d", "soon", -1, math.nan, math.inf],
)
def test_parse_duration_rejects(value: str | int | float) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)


def test_parse_duration_rejects_booleans() -> None:
    with pytest.raises(ValueError):
        parse_duration(True)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(5400, "1h30m"), (0.5, "500ms"), (120, "2m"), (90, "1m30s"), (0, "0s"), (3600.25, "1h250ms")],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_format_duration_rejects_negative() -> None:
    with pytest.raises(ValueError):
        format_duration(-1)


@given(st.integers(min_value=0, max_value=10**12))
def test_duration_round_trip_milliseconds(millis: int) -> None:
    seconds = millis / 1000
    assert parse_duration(format_duration(seconds)) == seconds


@given(st.floats(min_value=0, max_value=1e12, allow_nan=False, allow_infinity=False))
def test_duration_round_trip_any_float(seconds: float) -> None:
    assert parse_duration(format_duration(seconds)) == seconds
