"""Sizes (`16G`, `1024M`) and durations (`120s`, `1h30m`) as specs and the daemon config write them.

Pure: text in, numbers out (and back). It knows nothing about which key a value came from;
callers turn the `ValueError`s raised here into errors that name the file and the key.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal

_SIZE_UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
# Leading zeros are refused because bhyve and bhyveload read sizes with strtoul/expand_number
# in base 0, where `0512M` would be octal.
_SIZE_RE = re.compile(r"(0|[1-9][0-9]*)([KMGTkmgt])")
_SIZE_HINT = "expected a size like 16G or 1024M"
# bhyve keeps memory sizes in a size_t; larger values are typos, not guests.
MAX_SIZE = (1 << 63) - 1

_DURATION_UNITS = (("h", 3600), ("m", 60), ("s", 1), ("ms", Decimal("0.001")))
_NUMBER = r"[0-9]+(?:\.[0-9]+)?"
_DURATION_RE = re.compile(
    rf"(?:(?P<h>{_NUMBER})h)?(?:(?P<m>{_NUMBER})m(?!s))?(?:(?P<s>{_NUMBER})s)?(?:(?P<ms>{_NUMBER})ms)?"
)
_DURATION_HINT = (
    "expected a duration like 120s, 5m, 1h30m or 500ms, or an unquoted number of seconds"
)


def parse_size(text: str) -> int:
    """Bytes in `text`, a positive number with a K, M, G or T suffix (powers of 1024)."""
    match = _SIZE_RE.fullmatch(text)
    if match is None:
        raise ValueError(f"{_SIZE_HINT}, got {text!r}")
    number = int(match.group(1))
    if number == 0:
        raise ValueError("a size must be greater than zero")
    size = number * _SIZE_UNITS[match.group(2).upper()]
    if size > MAX_SIZE:
        raise ValueError(f"{text!r} is too large")
    return size


def canonical_size(text: str) -> str:
    """`text` as bhyve should receive it: the user's number with an upper-case unit."""
    parse_size(text)
    return text[:-1] + text[-1].upper()


def format_size(n: int) -> str:
    """`n` bytes in the largest unit that holds it exactly: 17179869184 -> `16G`.

    Sizes that no unit holds exactly (not a multiple of 1K) come out as `NB`, which is for
    people to read; `parse_size` does not take it back.
    """
    if n < 0:
        raise ValueError(f"a size cannot be negative: {n}")
    if n == 0:
        return "0B"
    for unit in ("T", "G", "M", "K"):
        factor = _SIZE_UNITS[unit]
        if n % factor == 0:
            return f"{n // factor}{unit}"
    return f"{n}B"


def parse_duration(value: str | int | float) -> float:
    """Seconds in `value`: a number of seconds, or text like `500ms`, `120s`, `5m`, `1h30m`."""
    if isinstance(value, bool):
        raise ValueError(f"{_DURATION_HINT}, got a boolean")
    if isinstance(value, int | float):
        seconds = float(value)
        if math.isnan(seconds) or math.isinf(seconds):
            raise ValueError(f"{_DURATION_HINT}, got {value!r}")
        if seconds < 0:
            raise ValueError(f"a duration cannot be negative: {value!r}")
        return seconds
    if not isinstance(value, str):
        raise ValueError(f"{_DURATION_HINT}, got {value!r}")
    match = _DURATION_RE.fullmatch(value)
    if not value or match is None:
        raise ValueError(f"{_DURATION_HINT}, got {value!r}")
    total = Decimal(0)
    for unit, factor in _DURATION_UNITS:
        part = match.group(unit)
        if part is not None:
            total += Decimal(part) * factor
    # Summing in Decimal and rounding once keeps `1h30m500ms` exactly equal to 5400.5.
    return float(total)


def format_duration(seconds: float) -> str:
    """`seconds` as text `parse_duration` reads back: 5400 -> `1h30m`, 0.5 -> `500ms`."""
    if math.isnan(seconds) or math.isinf(seconds) or seconds < 0:
        raise ValueError(f"not a duration: {seconds!r}")
    millis = round(seconds * 1000)
    if millis / 1000 != seconds:
        # Not a whole number of milliseconds: the shortest exact decimal, without exponent.
        return f"{Decimal(repr(float(seconds))):f}s"
    if millis == 0:
        return "0s"
    parts = []
    for unit, factor in (("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        count, millis = divmod(millis, factor)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
