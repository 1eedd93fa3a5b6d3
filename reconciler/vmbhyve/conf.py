"""vm-bhyve's `.conf` files (a guest's `NAME.conf`, `.config/system.conf`) read two ways at once.

vm-bhyve does not source these files. lib/vm-config `config::load` keeps the lines that start
with a lower-case letter, cuts each at its first `#` (even inside quotes), strips trailing
spaces and deletes every `"`; `config::get` then takes the FIRST line whose text before `=` is
the key. sysrc(8), which writes them (`key="value"`, verbatim, no escaping), and sh(1) read
them as shell and take the LAST assignment. `parse_conf` returns what vm-bhyve reads, and
reports every line where the two readings could differ, or which neither reads as a plain
assignment, with its line number: such a line is never guessed at. Pure: text in, values out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_KEY_RE = re.compile(r"([a-z][a-z0-9_]*)=")
_ANY_KEY_RE = re.compile(r"[ \t]*([A-Za-z_][A-Za-z0-9_]*)=")
_SPACED_EQUALS_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*[ \t]+=")
# Characters an unquoted value may hold and mean the same to sh and to vm-bhyve.
_BARE_RE = re.compile(r"[A-Za-z0-9_./:,@%+=^-]*")
# What may follow a value: spaces, then a comment. vm-bhyve strips spaces only (`sed 's@ *$@@'`).
_TAIL_RE = re.compile(r"(?: +(?:#.*)?)?")
_SH_SPECIAL = {"$": "`$`", "`": "a backquote", "\\": "a backslash"}
# config::get loops `for _c_line in ${VM_CONFIG}` unquoted: each line is also a file pattern.
_GLOB_CHARS = "*?["
_YES_NO_FALSE = ("no", "false", "off", "0")


@dataclass(frozen=True)
class Setting:
    """One `key=value` as vm-bhyve reads it, and the line (1-based) it comes from."""

    key: str
    value: str
    line: int


@dataclass(frozen=True)
class ConfProblem:
    """A line that vm-bhyve and sh could read differently, or that is no plain assignment."""

    line: int
    text: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass(frozen=True)
class ConfFile:
    """A parsed file: vm-bhyve's reading of every key (first assignment wins, file order)."""

    settings: tuple[Setting, ...]
    problems: tuple[ConfProblem, ...]

    def setting(self, key: str) -> Setting | None:
        return next((s for s in self.settings if s.key == key), None)

    def get(self, key: str, default: str | None = None) -> str | None:
        """config::get: the value when the key is present (even empty), else `default`."""
        found = self.setting(key)
        return default if found is None else found.value

    def text(self, key: str, default: str = "") -> str:
        """`get` for callers that treat a missing key like an empty one, as sh's `[ -n ]` does."""
        found = self.setting(key)
        return default if found is None else found.value

    def yesno(self, key: str, default: str = "") -> bool:
        """config::yesno: true unless empty or no/false/off/0 (any case), like util::yesno."""
        return is_yes(self.text(key, default))

    def keys(self) -> tuple[str, ...]:
        return tuple(s.key for s in self.settings)


def is_yes(value: str) -> bool:
    """lib/vm-util util::yesno: empty and no/false/off/0 (case-insensitive) are false."""
    return value != "" and value.lower() not in _YES_NO_FALSE


def vm_bhyve_reading(line: str) -> tuple[str, str] | None:
    """(key, value) config::load and config::get make of one line, or None if they drop it.

    A line without `=` is read with the whole text as key and as value (`${line%%=*}` and
    `${line#*=}` both leave it whole).
    """
    if not line or not "a" <= line[0] <= "z":
        return None
    text = line.split("#", 1)[0].rstrip(" ").replace('"', "")
    key, sep, value = text.partition("=")
    return (key, value) if sep else (text, text)


def _quoted_value(rest: str) -> tuple[str | None, str, str | None]:
    """(value, tail, problem) for text after `key=` that starts with a double quote."""
    end = rest.find('"', 1)
    if end < 0:
        return (
            None,
            "",
            (
                "unterminated double quote: sh continues the value on the next lines, "
                "vm-bhyve reads this line alone"
            ),
        )
    inner = rest[1:end]
    if "#" in inner:
        return None, "", "`#` inside quotes: vm-bhyve cuts the value there, sh keeps it"
    special = next((c for c in inner if c in _SH_SPECIAL), None)
    if special is not None:
        return (
            None,
            "",
            (
                f"{_SH_SPECIAL[special]} inside double quotes: sh expands or unescapes it, "
                "vm-bhyve reads it literally"
            ),
        )
    return inner, rest[end + 1 :], None


def _sh_value(rest: str) -> tuple[str | None, str | None]:
    """(value, problem): what sh assigns from the text after `key=`, if it is unambiguous."""
    if rest.startswith('"'):
        value, tail, problem = _quoted_value(rest)
        if problem is not None:
            return None, problem
    elif rest.startswith("'"):
        return None, "single quotes: sh removes them, vm-bhyve keeps them in the value"
    else:
        bare = _BARE_RE.match(rest)
        value = bare.group(0) if bare else ""
        tail = rest[len(value) :]
        if tail and not tail[0].isspace():
            return None, (
                f"{tail[0]!r} in an unquoted value: sh may read it as syntax; "
                'write the value in double quotes ("...")'
            )
    if "\r" in tail:
        return None, "carriage return (a DOS line ending): vm-bhyve keeps it in the value"
    if _TAIL_RE.fullmatch(tail) is None:
        if tail.lstrip(" \t").startswith("#") or not tail.strip():
            return None, "a tab after the value: vm-bhyve keeps it (it strips spaces only)"
        return None, "text after the value: sh would run it as a command, vm-bhyve keeps it"
    return value, None


def _not_assignment_problem(line: str) -> str:
    """Why a non-blank, non-comment line that is not `key=value` at column 0 is refused."""
    key_match = _ANY_KEY_RE.match(line)
    if key_match is not None and line[0] in " \t":
        return (
            "indented assignment: sh reads it, vm-bhyve ignores lines that do not start "
            "with a lower-case letter"
        )
    if key_match is not None and not "a" <= line[0] <= "z":
        return (
            f"key `{key_match.group(1)}` does not start with a lower-case letter: "
            "vm-bhyve ignores the line, sh reads it"
        )
    if key_match is not None:
        return f"key `{key_match.group(1)}` has upper-case letters; vm-bhyve's keys are lower-case"
    if _SPACED_EQUALS_RE.match(line.lstrip(" \t")):
        return "spaces around `=`: sh reads a command, not an assignment"
    return "not a `key=value` assignment or a comment"


def _line_problem(line: str) -> tuple[str | None, bool]:
    """(problem, opens_quote) for one line outside any quoted value."""
    stripped = line.strip(" \t")
    if not stripped or stripped.startswith("#"):
        return None, False
    match = _KEY_RE.match(line)
    if match is None:
        return _not_assignment_problem(line), False
    rest = line[match.end() :]
    value, problem = _sh_value(rest)
    if problem is not None:
        opens = rest.startswith('"') and rest.count('"') % 2 == 1
        return problem, opens
    read = vm_bhyve_reading(line)
    assert value is not None and read is not None
    if any(c in value for c in _GLOB_CHARS):
        return "`*`, `?` or `[` in a value: vm-bhyve's reader expands it as a file pattern", False
    if read[1] != value:
        return f"vm-bhyve reads {read[1]!r}, sh reads {value!r}", False
    return None, False


def _duplicate_problems(settings: list[Setting]) -> list[ConfProblem]:
    problems = []
    first: dict[str, Setting] = {}
    for setting in settings:
        earlier = first.setdefault(setting.key, setting)
        if earlier is not setting and earlier.value != setting.value:
            problems.append(
                ConfProblem(
                    setting.line,
                    "",
                    f"`{setting.key}` is set again (first on line {earlier.line}): vm-bhyve "
                    "reads the first, sysrc and sh the last",
                )
            )
    return problems


def parse_conf(text: str) -> ConfFile:
    """vm-bhyve's reading of a `.conf` file, and every line it may not share with sh/sysrc."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    read: list[Setting] = []
    problems: list[ConfProblem] = []
    open_quote: int | None = None  # line where a double-quoted value that sh continues began
    for number, line in enumerate(lines, start=1):
        pair = vm_bhyve_reading(line)
        if pair is not None:
            read.append(Setting(pair[0], pair[1], number))
        if open_quote is not None:
            problems.append(
                ConfProblem(
                    number,
                    line,
                    f"inside the double-quoted value opened on line {open_quote}: sh joins it "
                    "to that value, vm-bhyve reads it on its own",
                )
            )
            if line.count('"') % 2 == 1:
                open_quote = None
            continue
        problem, opens = _line_problem(line)
        if problem is not None:
            problems.append(ConfProblem(number, line, problem))
        if opens:
            open_quote = number
    problems += [
        ConfProblem(p.line, lines[p.line - 1], p.message) for p in _duplicate_problems(read)
    ]
    problems.sort(key=lambda p: p.line)
    seen: set[str] = set()
    settings = []
    for setting in read:
        if setting.key not in seen:
            seen.add(setting.key)
            settings.append(setting)
    return ConfFile(settings=tuple(settings), problems=tuple(problems))
