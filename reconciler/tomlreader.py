"""Reads one TOML table by its description: typed getters whose errors name the file and the
key, then the model value.

The toolkit under `guestfile` and `config`: `Reader` collects a file's errors, `Section` is one
table at a dotted key path, `read_table` walks a `TableSpec` and `build` makes its dataclass,
leaving every absent key to the dataclass default. Pure: parsed tables in, values and errors out.
"""

from __future__ import annotations

import dataclasses
import posixpath
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reconciler.errors import SpecError
from reconciler.schema import (
    NO_DEFAULT,
    Array,
    Boolean,
    Choice,
    Duration,
    HostPath,
    Integer,
    Key,
    Size,
    SubTable,
    TableArray,
    TableMap,
    TableSpec,
    Text,
    ValueType,
    field_default,
)
from reconciler.units import canonical_size, format_duration, parse_duration
from reconciler.valuerules import describe, did_you_mean, path_problem, show, unknown_key_message

MAX_ERRORS = 100  # per file; a hostile file must not make a megabyte of messages
# Sizes and durations longer than this are not numbers a person means; refusing them early
# keeps megabyte texts out of messages and away from int()'s limit on digits.
_LONGEST_NUMBER = 40


class Reader:
    """Collects the errors of one file while its tables are walked."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.count = 0  # every error reported, shown or not
        self._errors: list[SpecError] = []

    def error(self, key: str, message: str) -> None:
        self.count += 1
        if self.count <= MAX_ERRORS:
            self._errors.append(SpecError(self.file, key, message))

    @property
    def errors(self) -> list[SpecError]:
        hidden = self.count - len(self._errors)
        if not hidden:
            return list(self._errors)
        more = SpecError(self.file, "(file)", f"{hidden} more errors are not shown")
        return [*self._errors, more]


@dataclass(frozen=True)
class Entry:
    """One table of a `[[key]]` array (`name` is its index) or one value of a `TableMap`."""

    path: str  # `disk[0]`, `loader_env.autoboot_delay`
    name: str | int
    value: Any
    ok: bool  # read without an error
    raw: Any


class Section:
    """One TOML table at a dotted `prefix`; typed getters report wrong values and return None.

    `known` None accepts any key (the names of a `TableMap`)."""

    def __init__(
        self, reader: Reader, data: Mapping[str, Any], prefix: str, known: Sequence[str] | None
    ) -> None:
        self.reader = reader
        self.data = data
        self.prefix = prefix
        if known is not None:
            for key in data:
                if key not in known:
                    reader.error(self.path(key), unknown_key_message(key, known))

    def path(self, key: str) -> str:
        return f"{self.prefix}.{key}" if self.prefix else key

    def error(self, key: str, message: str) -> None:
        self.reader.error(self.path(key), message)

    def __contains__(self, key: str) -> bool:
        return key in self.data

    def _typed(self, key: str, kind: type, what: str) -> Any:
        if key not in self.data:
            return None
        value = self.data[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            self.error(key, f"expected {what}, got {describe(value)}")
            return None
        return value

    def string(self, key: str) -> str | None:
        value: str | None = self._typed(key, str, "a string")
        return value

    def boolean(self, key: str) -> bool | None:
        value: bool | None = self._typed(key, bool, "true or false")
        return value

    def array(self, key: str, items: str = "strings") -> list[Any] | None:
        value: list[Any] | None = self._typed(key, list, f"an array of {items}")
        return value

    def integer(self, key: str, low: int | None = None, high: int | None = None) -> int | None:
        value: int | None = self._typed(key, int, "an integer")
        if value is None:
            return None
        if (low is not None and value < low) or (high is not None and value > high):
            if high is None:
                self.error(key, f"must be at least {low}, got {value}")
            elif low is None:
                self.error(key, f"must be at most {high}, got {value}")
            else:
                self.error(key, f"must be between {low} and {high}, got {value}")
            return None
        return value

    def choice(self, key: str, choices: Sequence[str]) -> str | None:
        value = self.string(key)
        if value is None or value in choices:
            return value
        message = "expected one of " + ", ".join(show(c) for c in choices)
        near = did_you_mean(value, choices)
        if near is not None:
            message += f"; did you mean {show(near)}?"
        self.error(key, message)
        return None

    def size_text(self, key: str) -> str | None:
        """The canonical size text at `key` (`1024m` -> `1024M`)."""
        if key not in self.data:
            return None
        value = self.data[key]
        if not isinstance(value, str):
            self.error(key, f'expected a size string like "16G", got {describe(value)}')
            return None
        if len(value) > _LONGEST_NUMBER:
            self.error(key, f"expected a size like 16G or 1024M, got {show(value)}")
            return None
        size: str | None = self._checked(key, canonical_size, value)
        return size

    def duration(self, key: str, high: float | None = None) -> float | None:
        """Seconds at `key`: greater than zero, and at most `high`."""
        if key not in self.data:
            return None
        value = self.data[key]
        long_text = isinstance(value, str) and len(value) > _LONGEST_NUMBER
        if not isinstance(value, str | int | float) or isinstance(value, bool) or long_text:
            self.error(key, f'expected a duration like "120s", got {describe(value)}')
            return None
        seconds: float | None = self._checked(key, parse_duration, value)
        if seconds is None:
            return None
        if seconds <= 0:
            self.error(key, "must be greater than zero")
            return None
        if high is not None and seconds > high:
            self.error(key, f"must be at most {format_duration(high)}, got {show(value)}")
            return None
        return seconds

    def host_path(self, key: str, *, relative: bool = False) -> str | None:
        """A host path; a `relative` one follows the file, not the daemon's directory."""
        value = self.string(key)
        if value is None:
            return None
        resolved = value
        if relative and value:
            base = posixpath.dirname(self.reader.file)
            resolved = posixpath.normpath(posixpath.join(base, value))
        problem = path_problem(resolved, absolute=not relative)
        if problem is not None:
            self.error(key, f"{show(value)} {problem}")
            return None
        return resolved

    def _checked(self, key: str, convert: Callable[[Any], Any], value: Any) -> Any:
        try:
            return convert(value)
        except ValueError as exc:
            self.error(key, str(exc))
            return None

    def table(self, key: str, known: Sequence[str] | None) -> Section | None:
        if key not in self.data:
            return None
        value = self.data[key]
        if not isinstance(value, Mapping):
            self.error(key, f"expected a table ([{self.path(key)}]), got {describe(value)}")
            return None
        return Section(self.reader, value, self.path(key), known)

    def tables(self, key: str, known: Sequence[str]) -> list[Section]:
        """The `[[key]]` array of tables, each with its `key[i]` prefix."""
        if key not in self.data:
            return []
        value = self.data[key]
        if isinstance(value, Mapping):
            self.error(key, f"expected an array of tables: write [[{key}]], not [{key}]")
            return []
        if not isinstance(value, list):
            self.error(key, f"expected an array of tables ([[{key}]]), got {describe(value)}")
            return []
        out = []
        for index, item in enumerate(value):
            item_key = f"{self.path(key)}[{index}]"
            if isinstance(item, Mapping):
                out.append(Section(self.reader, item, item_key, known))
            else:
                self.reader.error(item_key, f"expected a table, got {describe(item)}")
        return out

    def read(self, key: Key, name: str | None = None) -> Any:
        """The value at `key` (at `name` for a `TableMap` entry) after its type and its rule;
        None when it is absent or wrong."""
        name = key.name if name is None else name
        value = _READERS[type(key.type)](self, name, key.type)
        if value is None or key.rule is None:
            return _plain(key.type, value)
        return key.rule(self, name, value)


def _plain(kind: ValueType, value: Any) -> Any:
    """The model value of a key without a rule."""
    if isinstance(kind, TableArray) and value is not None:
        return tuple(entry.value for entry in value if entry.ok)
    if isinstance(kind, TableMap) and value is not None:
        return tuple((entry.name, entry.value) for entry in value if entry.ok)
    if isinstance(kind, Array) and value is not None:
        return tuple(value)
    return value


def _read_sub_table(section: Section, name: str, kind: SubTable) -> Any:
    table = section.table(name, kind.spec.known)
    return None if table is None else build(kind.spec, read_table(table, kind.spec))


def _read_table_array(section: Section, name: str, kind: TableArray) -> list[Entry] | None:
    tables = section.tables(name, kind.spec.known)
    if not isinstance(section.data[name], list):
        return None
    entries = []
    for index, table in enumerate(tables):
        before = section.reader.count
        value = build(kind.spec, read_table(table, kind.spec))
        ok = value is not None and section.reader.count == before
        entries.append(Entry(table.prefix, index, value, ok, table.data))
    return entries


def _read_table_map(section: Section, name: str, kind: TableMap) -> list[Entry] | None:
    raw = section.data[name]
    if not isinstance(raw, Mapping):
        if isinstance(kind.entry.type, SubTable):
            shape = f"tables like [{section.path(name)}.{kind.name_example}]"
        else:
            shape = f"a table ([{section.path(name)}])"
        section.error(name, f"expected {shape}, got {describe(raw)}")
        return None
    table = Section(section.reader, raw, section.path(name), None)
    entries = []
    for entry_name, item in raw.items():
        problem = kind.name_rule(entry_name)
        if problem is not None:
            table.error(entry_name, problem)
            continue
        before = section.reader.count
        value = table.read(kind.entry, entry_name)
        if value is not None:
            ok = section.reader.count == before
            entries.append(Entry(table.path(entry_name), entry_name, value, ok, item))
    return entries


_READERS: dict[type, Callable[[Section, str, Any], Any]] = {
    Text: lambda s, n, k: s.string(n),
    Boolean: lambda s, n, k: s.boolean(n),
    Integer: lambda s, n, k: s.integer(n, k.low, k.high),
    Choice: lambda s, n, k: s.choice(n, k.choices),
    Size: lambda s, n, k: s.size_text(n),
    Duration: lambda s, n, k: s.duration(n, k.high),
    HostPath: lambda s, n, k: s.host_path(n, relative=k.relative),
    Array: lambda s, n, k: s.array(n, k.items),
    SubTable: _read_sub_table,
    TableArray: _read_table_array,
    TableMap: _read_table_map,
}


def read_table(section: Section, spec: TableSpec) -> dict[str, Any]:
    """Every valid value of `section` by model field name; each problem is reported."""
    values: dict[str, Any] = {}
    for key in spec.keys:
        if key.required is not None and section.data.get(key.name, []) == []:
            section.error(key.name, key.required)
        if key.name not in section:
            continue
        value = section.read(key)
        if value is not None:
            values[key.target] = value
    _check_one_of(section, spec)
    _check_only_with(section, spec, values)
    if spec.rule is not None:
        spec.rule(section, values)
    return values


def _check_one_of(section: Section, spec: TableSpec) -> None:
    exclusive = [key for key, _what in spec.at_most_one if key in section]
    if len(exclusive) > 1:
        either = " or ".join(
            f"`{key}` ({what})" if what else f"`{key}`" for key, what in spec.at_most_one
        )
        section.error(exclusive[-1], f"give either {either}, not both")
    if not spec.one_of:
        return
    given = [key for key, _what in spec.one_of if key in section]
    if len(given) > 1:
        either = " or ".join(f"`{key}`" for key, _what in spec.one_of)
        section.error(given[-1], f"give either {either}, not both")
    elif not given:
        needs = " or ".join(f"`{key}` ({what})" for key, what in spec.one_of)
        section.reader.error(section.prefix, f"needs {needs}")


def _check_only_with(section: Section, spec: TableSpec, values: Mapping[str, Any]) -> None:
    """Report keys given although the key they depend on has another value."""
    for key in spec.keys:
        if key.only_with is None or key.name not in section:
            continue
        other, needed = key.only_with
        other_key = spec.key(other)
        if other in section and other_key.target not in values:
            continue  # the other key is wrong itself, and reported
        actual = values.get(other_key.target, spec.default(other_key))
        if actual != needed:
            section.error(
                key.name,
                f"only valid with {other} = {show(needed)} (this guest uses {show(actual)})",
            )


def build(spec: TableSpec, values: Mapping[str, Any]) -> Any:
    """The model from `values` by field name, defaults for the rest; None if a field without
    a default has no value."""
    kwargs: dict[str, Any] = {}
    grouped: dict[str, dict[str, Any]] = {group: {} for group, _model in spec.groups}
    for target, value in values.items():
        group, dot, name = target.rpartition(".")
        if dot:
            grouped[group][name] = value
        else:
            kwargs[target] = value
    for group, model in spec.groups:
        kwargs[group] = model(**grouped[group])
    if not _required_fields(spec.model) <= kwargs.keys():
        return None
    return spec.model(**kwargs)


_REQUIRED: dict[type[Any], frozenset[str]] = {}


def _required_fields(model: type[Any]) -> frozenset[str]:
    """The fields of `model` without a default (memoised: models are few and fixed)."""
    found = _REQUIRED.get(model)
    if found is None:
        found = _REQUIRED[model] = frozenset(
            f.name
            for f in dataclasses.fields(model)
            if f.init and field_default(model, f.name) is NO_DEFAULT
        )
    return found
