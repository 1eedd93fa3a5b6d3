"""Values on command lines and in messages: the rules a value must follow to reach an argv
(DESIGN.md rule 6), and how a value is spelt back in an error message (with the near miss a
person probably meant).

Pure functions of one value; they know nothing about which file or key it came from.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,30}")
NAME_RULE = "1 to 31 characters from A-Z a-z 0-9 _ . -, starting with a letter or digit"
TAP_RE = re.compile(r"tap[0-9]{1,5}")
IFNAME_RE = re.compile(r"[a-z][a-z0-9_.]{0,14}")
IFNAME_RULE = "an interface name: a lower-case letter, then up to 14 of a-z 0-9 _ ."
PATH_MAX = 1023
# RFC 1123 host names: dot-separated labels of 1 to 63 letters, digits and inner hyphens.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
HOST_NAME_RE = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
HOST_NAME_RULE = (
    "dot-separated labels of 1-63 letters, digits and `-`, not starting or ending with `-`"
)
MAX_HOST_NAME = 253

_ZVOL_PART_RE = re.compile(r"[A-Za-z0-9_.:][A-Za-z0-9_.:-]*")
_ZVOL_MAX = 255  # ZFS_MAX_DATASET_NAME_LEN - 1
# Characters a person cannot see in a terminal or an editor: format characters (zero-width
# space and joiners, bidi overrides, BOM), line and paragraph separators, surrogates.
_INVISIBLE_CATEGORIES = frozenset({"Cf", "Zl", "Zp", "Cs"})


def is_control(char: str) -> bool:
    code = ord(char)
    return code < 0x20 or 0x7F <= code <= 0x9F


def is_invisible(char: str) -> bool:
    """A character that would hide in a path or an argv element: a control or format
    character, a line or paragraph separator, or a space other than the ASCII one."""
    if is_control(char):
        return True
    if unicodedata.category(char) in _INVISIBLE_CATEGORIES:
        return True
    return char != " " and char.isspace() and not char.isascii()


def char_name(char: str) -> str:
    """How a message names a character that is not allowed."""
    if char == ",":
        return "a comma"
    if char == "%":
        return "`%`"
    if is_control(char):
        return f"a control character ({char.encode('unicode_escape').decode('ascii')})"
    if char.isascii() and char.isspace():
        return "whitespace"
    kind = "whitespace" if char.isspace() else "an invisible character"
    return f"{kind} (U+{ord(char):04X} {unicodedata.name(char, 'unnamed')})"


def show(value: Any) -> str:
    """A value as TOML would spell it, short enough for a one-line message."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        text = value if len(value) <= 40 else value[:37] + "..."
        return '"' + text.encode("unicode_escape").decode("ascii").replace('"', '\\"') + '"'
    if isinstance(value, int | float):
        return repr(value)
    return ""


def describe(value: Any) -> str:
    """What a value is, for "expected X, got Y" messages."""
    if isinstance(value, bool):
        kind = "a boolean"
    elif isinstance(value, int):
        kind = "an integer"
    elif isinstance(value, float):
        kind = "a float"
    elif isinstance(value, str):
        kind = "a string"
    elif isinstance(value, list):
        return "an array"
    elif isinstance(value, Mapping):
        return "a table"
    else:
        return "a date/time"
    return f"{kind} ({show(value)})"


def did_you_mean(word: str, choices: Sequence[str]) -> str | None:
    by_lower = {choice.lower(): choice for choice in choices}
    close = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=0.6)
    return by_lower[close[0]] if close else None


def unknown_key_message(key: str, known: Sequence[str]) -> str:
    near = did_you_mean(key, known)
    if near is not None:
        return f"unknown key; did you mean `{near}`?"
    return "unknown key; expected one of " + ", ".join(f"`{k}`" for k in known)


def path_problem(text: str, *, absolute: bool = True) -> str | None:
    """Why `text` cannot be a host path on a bhyve or loader command line, or None if it can.

    A comma would start a new bhyve option inside `-s`/`-l`; whitespace and control
    characters break device.map lines and log lines; `%` starts bhyve's `%(var)` expansion;
    invisible characters make a path that is not the one a person reads.
    """
    if not text:
        return "must not be empty"
    if absolute and not text.startswith("/"):
        return "must be an absolute path"
    if len(text) > PATH_MAX:
        return f"is longer than {PATH_MAX} characters"
    if text.isascii() and text.isprintable():
        # The common case, without a function call per character: in printable ASCII only
        # these three are unwelcome.
        bad = next((c for c in text if c in ",% "), None)
    else:
        bad = next((c for c in text if c in ",%" or c.isspace() or is_invisible(c)), None)
    if bad is not None:
        return f"must not contain {char_name(bad)}: it would reach bhyve's option syntax"
    parts = text.split("/")[1:] if text.startswith("/") else text.split("/")
    if text == "/" or text.endswith("/"):
        return "must name a file, not a directory ending in `/`"
    if "" in parts:
        return "must be normalised: no `//`"
    if "." in parts or ".." in parts:
        return "must be normalised: no `.` or `..` components"
    return None


def zvol_problem(text: str) -> str | None:
    """Why `text` cannot name a ZFS volume (`pool/dataset[/...]`), or None if it can."""
    parts = text.split("/")
    if len(parts) < 2 or not all(parts):
        return 'expected a ZFS volume name like "zroot/vm/disk0"'
    if len(text) > _ZVOL_MAX:
        return f"is longer than {_ZVOL_MAX} characters"
    for part in parts:
        if part in (".", "..") or _ZVOL_PART_RE.fullmatch(part) is None:
            return (
                f"component {show(part)} must be made of A-Z a-z 0-9 _ . : - and not start with `-`"
            )
    if not parts[0][0].isalpha():
        return "a ZFS pool name starts with a letter"
    return None


def argv_text_problem(text: str) -> str | None:
    """Why `text` cannot be (part of) one argv element, or None: ASCII spaces are fine there,
    control and invisible characters are not."""
    bad = next((c for c in text if is_invisible(c)), None)
    return None if bad is None else f"must not contain {char_name(bad)}"


def word_problem(text: str) -> str | None:
    """Why `text` cannot be a word on a command line (no whitespace at all), or None."""
    bad = next((c for c in text if c.isspace() or is_invisible(c)), None)
    return None if bad is None else f"must not contain {char_name(bad)}"


def file_text_problem(text: str) -> str | None:
    """Why `text` cannot be written into a generated file (grub.cfg), or None: lines and tabs
    are fine there, other control characters are not."""
    bad = next((c for c in text if is_control(c) and c not in "\t\n\r"), None)
    return None if bad is None else f"must not contain {char_name(bad)}"
