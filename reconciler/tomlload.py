"""The one bounded TOML loader for untrusted files: guest specs and the daemon config.

Pure: bytes or text in, parsed tables or `SpecError`s (file and `line L, column C`) out. Before
tomllib sees a text, a linear scan that keeps no more than MAX_DEPTH frames refuses what would
make tomllib recurse without bound or take quadratic time and memory (DESIGN.md rule 8):

- MAX_TOML_BYTES: the whole file, as UTF-8.
- MAX_DEPTH: how deep a value sits. Every part of a table header or a dotted key is a level,
  an array of tables (`[[...]]`) one more, and every array a level; `a = [[1]]` puts 1 at
  depth 3, `[[disk]]` + `options = ["ro"]` puts "ro" at depth 4.
- MAX_KEY_PARTS: the parts of one dotted key or table header (`a.b.c` has 3).
- MAX_KEY_LENGTH: one key part, quotes included.
- MAX_SCALAR_LENGTH: one number, boolean or date; strings are bounded by the file size only.

Brackets, dots and `#` inside quoted strings and comments do not count. The scan follows
tomllib's reading of every text tomllib accepts; where a text stops being TOML the scan stops
too, and tomllib reports the syntax error at that place.
"""

from __future__ import annotations

import re
import tomllib
from typing import Any

from reconciler.errors import SpecError

MAX_TOML_BYTES = 1 << 20
MAX_DEPTH = 16
MAX_KEY_PARTS = 8
MAX_KEY_LENGTH = 128
MAX_SCALAR_LENGTH = 100
FILE_KEY = "(file)"

# Repeated groups are possessive (`*+`, `++`): sre then keeps no backtracking state for each
# repetition, so a megabyte string or block of comments is matched in constant memory.
_WS = re.compile(r"[ \t]*")
# Blank space between statements or array elements: whitespace, newlines and comments.
_GAP = re.compile(r"(?:[ \t\r\n]++|#[^\n]*+)*+")
_REST_OF_LINE = re.compile(r"[^\n]*")
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_BASIC = re.compile(r'"(?:[^"\\\n]++|\\.)*+"')
_LITERAL = re.compile(r"'[^'\n]*'")
# A closing delimiter may be followed by one or two more quotes, which belong to the string.
_ML_BASIC = re.compile(r'"""(?:[^"\\]++|\\.|"(?!""))*+"""(?:"{1,2})?', re.DOTALL)
_ML_LITERAL = re.compile(r"'''(?:[^']++|'(?!''))*+'''(?:'{1,2})?")
_SCALAR = re.compile(r"[0-9A-Za-z_+.:-]+")
_STRINGS = (_ML_BASIC, _ML_LITERAL, _BASIC, _LITERAL)
_SYNTAX_LOCATION_RE = re.compile(r"\s*\(at line (\d+), column (\d+)\)$|\s*\(at end of document\)$")


class _Refused(Exception):
    def __init__(self, pos: int, message: str) -> None:
        super().__init__(message)
        self.pos = pos
        self.message = message


class _Stop(Exception):
    """The text is not TOML from here on; tomllib will say why."""


def position_key(text: str, pos: int) -> str:
    """`line L, column C` of character offset `pos`, counted as tomllib counts them."""
    line = text.count("\n", 0, pos) + 1
    return f"line {line}, column {pos - text.rfind(chr(10), 0, pos)}"


class _Scanner:
    """One pass over a text; `frames` holds (closer, depth) of the open arrays and inline
    tables of the value being read, never more than MAX_DEPTH of them."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def scan(self) -> None:
        """Raise `_Refused` at the first place that exceeds a limit."""
        text = self.text
        try:
            header = 0
            while True:
                self._skip(_GAP)
                if self.pos >= len(text):
                    return
                if text[self.pos] == "[":
                    header = self._header()
                else:
                    depth = header + self._key()
                    self._check_depth(depth)
                    self._expect("=")
                    self._value(depth)
                # What may follow a statement on its line is a comment or a datetime's time;
                # anything else is a syntax error that tomllib reports.
                self._skip(_REST_OF_LINE)
        except _Stop:
            return

    def _skip(self, pattern: re.Pattern[str]) -> None:
        """Move past what `pattern` (one that matches the empty string too) matches."""
        match = pattern.match(self.text, self.pos)
        assert match is not None
        self.pos = match.end()

    def _header(self) -> int:
        array = self.text.startswith("[[", self.pos)
        self.pos += 2 if array else 1
        depth = self._key() + (1 if array else 0)
        self._check_depth(depth)
        self._expect("]]" if array else "]")
        return depth

    def _key(self) -> int:
        """Read a dotted key; its number of parts."""
        text = self.text
        parts = 0
        while True:
            self._skip(_WS)
            start = self.pos
            match = (
                _BARE_KEY.match(text, start)
                or _BASIC.match(text, start)
                or _LITERAL.match(text, start)
            )
            if match is None:
                raise _Stop
            parts += 1
            if parts > MAX_KEY_PARTS:
                raise _Refused(start, f"a dotted key has more than {MAX_KEY_PARTS} parts")
            if match.end() - start > MAX_KEY_LENGTH:
                raise _Refused(start, f"a key is longer than {MAX_KEY_LENGTH} characters")
            self.pos = match.end()
            self._skip(_WS)
            if not text.startswith(".", self.pos):
                return parts
            self.pos += 1

    def _expect(self, token: str) -> None:
        self._skip(_WS)
        if not self.text.startswith(token, self.pos):
            raise _Stop
        self.pos += len(token)

    def _check_depth(self, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise _Refused(
                self.pos,
                f"nested deeper than {MAX_DEPTH} levels (table headers, dotted keys, arrays "
                "and inline tables count)",
            )

    def _value(self, depth: int) -> None:
        """Read one value, arrays and inline tables included, without recursion."""
        frames: list[tuple[str, int]] = []
        state = "value"
        while True:
            in_array = bool(frames) and frames[-1][0] == "]"
            # Newlines and comments separate array elements; an inline table is one line.
            self._skip(_GAP if in_array else _WS)
            if state == "key":
                base = frames[-1][1]
                if self.text.startswith("}", self.pos):
                    state = self._close(frames)
                    continue
                depth = base + self._key()
                self._check_depth(depth)
                self._expect("=")
                state = "value"
            elif state == "value":
                state, depth = self._open_or_scalar(frames, depth)
            else:
                state = self._after(frames)
            if state == "done":
                return
            if frames and state == "value" and frames[-1][0] == "]":
                depth = frames[-1][1]

    def _open_or_scalar(self, frames: list[tuple[str, int]], depth: int) -> tuple[str, int]:
        char = self.text[self.pos : self.pos + 1]
        if char == "[":
            self._check_depth(depth + 1)
            frames.append(("]", depth + 1))
            self.pos += 1
            return "value", depth + 1
        if char == "{":
            frames.append(("}", depth))
            self.pos += 1
            return "key", depth
        if char == "]" and frames and frames[-1][0] == "]":
            return self._close(frames), depth  # `[]`, or a trailing comma
        self._scalar()
        return ("after" if frames else "done"), depth

    def _after(self, frames: list[tuple[str, int]]) -> str:
        char = self.text[self.pos : self.pos + 1]
        if char == ",":
            self.pos += 1
            return "value" if frames[-1][0] == "]" else "key"
        if char == frames[-1][0]:
            return self._close(frames)
        if _SCALAR.match(self.text, self.pos):
            self._scalar()  # the time of a datetime written with a space
            return "after"
        raise _Stop

    def _close(self, frames: list[tuple[str, int]]) -> str:
        frames.pop()
        self.pos += 1
        return "after" if frames else "done"

    def _scalar(self) -> None:
        text = self.text
        for pattern in _STRINGS:
            match = pattern.match(text, self.pos)
            if match is not None:
                self.pos = match.end()
                return
        match = _SCALAR.match(text, self.pos)
        if match is None:
            raise _Stop
        if match.end() - self.pos > MAX_SCALAR_LENGTH:
            raise _Refused(
                self.pos,
                f"a value that is not a string is longer than {MAX_SCALAR_LENGTH} characters",
            )
        self.pos = match.end()


def scan_problem(text: str, *, file: str) -> SpecError | None:
    """The first limit `text` exceeds, as a `SpecError` at its line and column, or None."""
    try:
        _Scanner(text).scan()
    except _Refused as refused:
        return SpecError(file, position_key(text, refused.pos), refused.message + "; not parsed")
    return None


def syntax_error(exc: tomllib.TOMLDecodeError, text: str, *, file: str) -> SpecError:
    """One `SpecError` for a TOML syntax error, keyed `line L, column C` as tomllib locates it
    (the end of the last line for an error at the end of the document)."""
    message = str(exc)
    match = _SYNTAX_LOCATION_RE.search(message)
    if match is None:
        return SpecError(file, "(syntax)", message)
    if match.group(1) is not None:
        key = f"line {match.group(1)}, column {match.group(2)}"
    else:
        stripped = text.rstrip("\n")
        key = position_key(stripped, len(stripped))
    return SpecError(file, key, message[: match.start()] or message)


def load_toml(source: str | bytes, *, file: str) -> tuple[dict[str, Any] | None, list[SpecError]]:
    """The tables of `source` (UTF-8 bytes or text), or None and the one error that stops it."""
    size = len(source) if isinstance(source, bytes) else _utf8_length(source)
    if size > MAX_TOML_BYTES:
        return None, [SpecError(file, FILE_KEY, f"larger than {MAX_TOML_BYTES} bytes")]
    if isinstance(source, bytes):
        try:
            text = source.decode("utf-8")
        except UnicodeDecodeError as exc:
            return None, [SpecError(file, FILE_KEY, f"not UTF-8 text (byte {exc.start})")]
    else:
        text = source
    refusal = scan_problem(text, file=file)
    if refusal is not None:
        return None, [refusal]
    try:
        return tomllib.loads(text), []
    except tomllib.TOMLDecodeError as exc:
        return None, [syntax_error(exc, text, file=file)]
    except (RecursionError, ValueError) as exc:
        # Only reachable if the scan and tomllib ever disagree: still an error of the file,
        # never of the daemon. (ValueError: Python's limit on digits in an integer.)
        return None, [SpecError(file, FILE_KEY, f"cannot be read: {type(exc).__name__}: {exc}")]


def _utf8_length(text: str) -> int:
    if len(text) > MAX_TOML_BYTES:
        return len(text)
    return len(text.encode("utf-8", "surrogatepass"))
