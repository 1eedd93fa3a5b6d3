"""Regular expressions for a JSON Schema that say what the guest file's code rules say.

Pure. Each pattern is anchored and uses only what Python's `re`, ECMA-262 and Rust's `regex`
(Taplo's engine) all read: classes, `(?:...)`, counted repetition, `\\uXXXX` escapes; no
look-around. Number ranges become digit patterns (`range_pattern`); the characters a path or
an argv element may not hold come from the predicates the parser itself uses (`valuerules`), so
the two cannot drift apart.

`$` is read as those engines read it: the end of the value. Python's `re.search` (which the
`jsonschema` package uses) also lets it match before a final newline, so that package accepts
"/vm/a.img\n" where the editors and the parser refuse it; no pattern without look-around can
say otherwise to all three engines.
"""

from __future__ import annotations

import functools
import re

from reconciler.units import MAX_SIZE
from reconciler.valuerules import IFNAME_RE, NAME_RE, TAP_RE, is_control, is_invisible

SIZE_UNITS = (("K", 1 << 10), ("M", 1 << 20), ("G", 1 << 30), ("T", 1 << 40))
_MAX_CODE_POINT = 0x10FFFF
# Surrogates cannot be in a TOML file (UTF-8 cannot hold them, TOML escapes refuse them), and
# Rust's regex refuses them in a pattern: they are left out of every class.
_SURROGATES = range(0xD800, 0xE000)


def anchored(body: str) -> str:
    return f"^(?:{body})$"


def named(regex: re.Pattern[str]) -> str:
    """A project regex (used with fullmatch) as an anchored schema pattern."""
    return anchored(regex.pattern)


NAME = named(NAME_RE)
TAP = named(TAP_RE)
IFNAME = named(IFNAME_RE)


# ---- numbers ----------------------------------------------------------------------------


def _digits(count: int) -> str:
    return "" if count == 0 else "[0-9]" if count == 1 else f"[0-9]{{{count}}}"


def _span(low: str, high: str) -> str:
    return low if low == high else f"[{low}-{high}]"


def _same_length(low: str, high: str) -> list[str]:
    """Patterns for the numbers from `low` to `high`, both of one length (digits may be 0)."""
    if low == high:
        return [low]
    common = 0
    while low[common] == high[common]:
        common += 1
    prefix, low, high = low[:common], low[common:], high[common:]
    rest = len(low) - 1
    zeros, nines = "0" * rest, "9" * rest
    if low[1:] == zeros and high[1:] == nines:
        return [prefix + _span(low[0], high[0]) + _digits(rest)]
    out: list[str] = []
    first, last = low[0], high[0]
    if low[1:] != zeros:
        out += [prefix + low[0] + p for p in _same_length(low[1:], nines)]
        first = chr(ord(first) + 1)
    if high[1:] != nines:
        last = chr(ord(last) - 1)
    if first <= last:
        out.append(prefix + _span(first, last) + _digits(rest))
    if high[1:] != nines:
        out += [prefix + high[0] + p for p in _same_length(zeros, high[1:])]
    return out


def _alternatives(low: int, high: int) -> list[tuple[str, int]]:
    """(pattern, digit count) for the integers low..high, written without leading zeros."""
    out: list[tuple[str, int]] = []
    while low <= high:
        length = len(str(low))
        top = min(high, 10**length - 1)
        out += [(p, length) for p in _same_length(str(low), str(top))]
        low = top + 1
    return out


def range_pattern(low: int, high: int, *, zeros: bool = False, width: int | None = None) -> str:
    """The integers `low`..`high` in decimal (unanchored); `zeros`: leading zeros allowed,
    up to `width` digits in all when given."""
    parts = []
    for pattern, length in _alternatives(low, high):
        if zeros and width is not None:
            pad = width - length
            lead = "" if pad <= 0 else "0?" if pad == 1 else f"0{{0,{pad}}}"
        else:
            lead = "0*" if zeros else ""
        parts.append(lead + pattern)
    return "(?:" + "|".join(parts) + ")"


def at_most(high: int) -> str:
    """A non-negative decimal number, optionally with a fraction, that is at most `high`."""
    below = range_pattern(0, high - 1, zeros=True) if high > 0 else None
    exact = f"0*{high}(?:\\.0+)?"
    return f"(?:{below}(?:\\.[0-9]+)?|{exact})" if below is not None else f"(?:{exact})"


# ---- sizes and durations ---------------------------------------------------------------


def size_pattern(minimum: int = 1) -> str:
    """A size as the parser reads it (`16G`: no leading zero, K/M/G/T in either case) from
    `minimum` bytes to the largest bhyve takes."""
    parts = []
    for unit, factor in SIZE_UNITS:
        low = max(1, -(-minimum // factor))
        high = MAX_SIZE // factor
        if low <= high:
            parts.append(f"{range_pattern(low, high)}[{unit}{unit.lower()}]")
    return anchored("|".join(parts))


_NUMBER = r"[0-9]+(?:\.[0-9]+)?"


def duration_pattern(cap: float | None) -> str:
    """`1h30m`, `90s`, `500ms`...: each part at most `cap` seconds when there is one (the
    parts' sum is arithmetic a pattern cannot do)."""
    if cap is None:
        h = m = s = ms = _NUMBER
    else:
        whole = int(cap)
        h, m = at_most(whole // 3600), at_most(whole // 60)
        s, ms = at_most(whole), at_most(whole * 1000)
    return anchored(f"(?:{h}h)?(?:{m}m)?(?:{s}s)?(?:{ms}ms)?")


# ---- characters ------------------------------------------------------------------------


def _escape(code: int) -> str:
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def _class_body(codes: list[int]) -> str:
    """A character class body for sorted code points, as ranges."""
    codes = [c for c in codes if c not in _SURROGATES]
    parts = []
    start = prev = codes[0]
    for code in [*codes[1:], -1]:
        if code == prev + 1:
            prev = code
            continue
        parts.append(_escape(start) if start == prev else f"{_escape(start)}-{_escape(prev)}")
        start = prev = code
    return "".join(parts)


@functools.cache
def invisible_class() -> str:
    """Everything `valuerules.is_invisible` refuses, as a class body."""
    return _class_body([c for c in range(_MAX_CODE_POINT + 1) if is_invisible(chr(c))])


@functools.cache
def space_class() -> str:
    """Whitespace (`str.isspace`) and invisible characters, as a class body."""
    codes = [c for c in range(_MAX_CODE_POINT + 1) if chr(c).isspace() or is_invisible(chr(c))]
    return _class_body(codes)


def path_body(*, absolute: bool = True) -> str:
    """What `valuerules.path_problem` accepts, but for the length (a schema's maxLength);
    unanchored."""
    bad = f"/,%{space_class()}"
    part = f"(?:[^{bad}.][^{bad}]*|\\.[^{bad}.][^{bad}]*|\\.\\.[^{bad}]+)"
    return f"/{part}(?:/{part})*" if absolute else f"/?{part}(?:/{part})*"


def path_pattern(*, absolute: bool = True) -> str:
    return anchored(path_body(absolute=absolute))


def no_invisible_pattern() -> str:
    """`valuerules.argv_text_problem`: no control or invisible character."""
    return f"^[^{invisible_class()}]*$"


def word_pattern(*, no_dash: bool = False) -> str:
    """`valuerules.word_problem`, not empty, and (`no_dash`) not starting with `-`."""
    first = f"[^-{space_class()}]" if no_dash else f"[^{space_class()}]"
    return f"^{first}[^{space_class()}]*$"


def file_text_pattern() -> str:
    """`valuerules.file_text_problem`: control characters but tab, CR and LF are refused."""
    codes = [c for c in range(0x100) if is_control(chr(c)) and chr(c) not in "\t\n\r"]
    return f"^[^{_class_body(codes)}]*$"


# ---- the guest file's own values --------------------------------------------------------


def zvol_pattern() -> str:
    """`valuerules.zvol_problem`: pool/dataset[/...], components of A-Z a-z 0-9 _ . : -,
    none `.` or `..` or starting with `-`, the pool starting with a letter."""
    chars = "A-Za-z0-9_.:-"
    part = f"(?:[A-Za-z0-9_:][{chars}]*|\\.[A-Za-z0-9_:-][{chars}]*|\\.\\.[{chars}]+)"
    return anchored(f"[A-Za-z][{chars}]*(?:/{part})+")


MAC = anchored("[0-9A-Fa-f][02468ACEace](?::[0-9A-Fa-f]{2}){5}")  # unicast: bit 0 clear
MAC_ZERO = anchored("00(?::00){5}")


def passthru_pattern() -> str:
    """`bus/slot/function`, up to 3/2/2 digits, 0-255 / 0-31 / 0-7 (guestrules.passthru)."""
    bus = range_pattern(0, 255, zeros=True, width=3)
    slot = range_pattern(0, 31, zeros=True, width=2)
    function = range_pattern(0, 7, zeros=True, width=2)
    return anchored(f"{bus}/{slot}/{function}")


SECTOR_SIZES = tuple(1 << n for n in range(9, 17))  # 512 to 65536


def _sector(size: int) -> str:
    pad = 6 - len(str(size))
    return (f"0{{0,{pad}}}" if pad > 1 else "0?" if pad == 1 else "") + str(size)


def sectorsize_pattern() -> str:
    """`sectorsize=N` or `sectorsize=N/M` with powers of two from 512 to 65536, N <= M, each
    up to six digits (guestrules' disk option rule)."""
    singles = [_sector(n) for n in SECTOR_SIZES]
    pairs = [f"{_sector(n)}/{_sector(m)}" for n in SECTOR_SIZES for m in SECTOR_SIZES if n <= m]
    return anchored("sectorsize=(?:" + "|".join(singles + pairs) + ")")


def listen_patterns() -> list[str]:
    """`guestrules.listen`, as patterns all of which must match: host:port, the host an IPv4
    address or a host name (one with a letter or `-`), no `..`, the port 1-65535."""
    octet = range_pattern(0, 255)
    ipv4 = f"{octet}(?:\\.{octet}){{3}}"
    host = "[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?"
    port = range_pattern(1, 65535, zeros=True, width=5)
    return [anchored(f"{host}:{port}"), f"^(?:{ipv4}:|[^:]*[A-Za-z-])"]


# ---- cloud-init values ------------------------------------------------------------------

_IPV4 = f"{range_pattern(0, 255)}(?:\\.{range_pattern(0, 255)}){{3}}"
# An IPv6 address in any of its spellings (groups, `::`, an embedded IPv4 tail, a zone):
# looser than Python's `ipaddress`, which the parser asks; the schema only keeps out what is
# plainly no address.
_IPV6 = "[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){1,7}(?::" + _IPV4 + ")?(?:%[^/%\\s]+)?"


def ip_pattern() -> str:
    """`cloudinit_rules.ip_address`: an IPv4 address (no leading zeros) or an IPv6 one."""
    return anchored(f"{_IPV4}|{_IPV6}")


def interface_address_pattern() -> str:
    """`cloudinit_rules.address`: an address with its prefix, 0-32 (IPv4) or 0-128 (IPv6)."""
    return anchored(f"{_IPV4}/{range_pattern(0, 32)}|{_IPV6}/{range_pattern(0, 128)}")


def ssh_key_pattern(types: tuple[str, ...]) -> str:
    """`cloudinit_rules.ssh_key_problem` as far as a pattern goes: one line, a known type,
    base64 in whole quads, an optional comment (the key blob's own framing is the parser's)."""
    kinds = "|".join(re.escape(kind) for kind in types)
    quads = "(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{4})"
    return f"^ *(?:{kinds}) +{quads}(?: [^\\u0000-\\u001f\\u007f]*)?$"
