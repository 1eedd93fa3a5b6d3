"""Host output is bytes until parsed (reference §8.11): every parser takes whatever bytes a
command printed, and what is not UTF-8 reaches values escaped, never as an error."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from reconciler.facts import parse_ifconfig, parse_kldstat, parse_sysctl, parse_zfs_volumes

# An interface description set from a Latin-1 terminal: `ifconfig tap0 description café`.
LATIN1 = "café".encode("latin-1")
TAP = (
    b"tap0: flags=8943<UP,BROADCAST,RUNNING,PROMISC,SIMPLEX,MULTICAST> metric 0 mtu 1500\n"
    b"\tdescription: " + LATIN1 + b" \xff\xfe\n"
    b"\tgroups: tap\n"
    b"\tOpened by PID 1660\n"
)


def test_a_description_that_is_not_utf8_parses_escaped() -> None:
    tap = parse_ifconfig(TAP)["tap0"]
    assert tap.description == "caf\\xe9 \\xff\\xfe"
    assert (tap.kind, tap.up, tap.opened_by, tap.groups) == ("tap", True, 1660, ("tap",))


def test_a_unicode_line_separator_in_a_description_makes_no_interface() -> None:
    # Only "\n" ends a line in ifconfig's output; U+2028 and U+0085 are description text.
    forged = "x\u2028tap9: flags=8843<UP> metric 0 mtu 1500\u0085bridge9: flags=1<UP>"
    text = TAP.replace(LATIN1, forged.encode())
    assert list(parse_ifconfig(text)) == ["tap0"]


@given(st.binary(max_size=2000))
def test_every_parser_takes_any_bytes(data: bytes) -> None:
    parse_ifconfig(data)
    parse_kldstat(data)
    parse_sysctl(data)
    try:
        parse_zfs_volumes(data)
    except ValueError as exc:  # its documented refusal of sizes made without -p
        assert "not a byte count" in str(exc)


@given(st.binary(max_size=200).filter(lambda b: b"\n" not in b))
def test_any_description_bytes_come_back_as_text(raw: bytes) -> None:
    text = TAP.replace(LATIN1 + b" \xff\xfe", raw)
    description = parse_ifconfig(text)["tap0"].description
    if description is not None:
        description.encode("utf-8", "strict")  # what status.json and the log write
