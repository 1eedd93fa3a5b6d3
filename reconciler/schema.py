"""Declarative descriptions of TOML files: every key described once.

A `Key` gives a key's TOML type (`Text`, `Integer`, `Choice`, ..., `SubTable`, `TableArray`,
`TableMap`), allowed values or range, a one-line meaning, a valid example and the code rule
attached to it; its default is the model dataclass field's, never written here. A `TableSpec`
is one table's keys and the dataclass they fill. From these come the known keys and defaults
the reader uses (`tomlreader`), the file format again (`dump`) and the rows of a key reference
(`documented_keys`), from which the README table or a JSON Schema can be generated. Pure.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reconciler.units import format_duration
from reconciler.valuerules import show

if TYPE_CHECKING:
    from reconciler.tomlreader import Section

# A key's code rule: (its table, its name, the value of the right TOML type) -> the value for
# the model, or None after reporting why not.
Rule = Callable[["Section", str, Any], Any]
# A table's rule across its keys: (the table, the values read so far, by field name).
TableRule = Callable[["Section", dict[str, Any]], None]


@dataclass(frozen=True)
class Text:
    toml = "string"

    def allowed(self) -> str:
        return ""


@dataclass(frozen=True)
class Boolean:
    toml = "boolean"

    def allowed(self) -> str:
        return "true or false"


@dataclass(frozen=True)
class Integer:
    low: int | None = None
    high: int | None = None
    toml = "integer"

    def allowed(self) -> str:
        if self.low is not None and self.high is not None:
            return f"{self.low} to {self.high}"
        return f"at least {self.low}" if self.low is not None else "any integer"


@dataclass(frozen=True)
class Choice:
    choices: tuple[str, ...]
    toml = "string"

    def allowed(self) -> str:
        return ", ".join(show(c) for c in self.choices)


@dataclass(frozen=True)
class Size:
    """A size like "16G"; the value is its canonical text ("1024m" -> "1024M")."""

    toml = "string"

    def allowed(self) -> str:
        return 'a size like "16G" (K, M, G, T: powers of 1024)'


@dataclass(frozen=True)
class Duration:
    """A duration like "120s" or a number of seconds, greater than zero and at most `high`."""

    high: float | None = None
    toml = "string or number"

    def allowed(self) -> str:
        cap = f", at most {format_duration(self.high)}" if self.high is not None else ""
        return f'a duration like "120s", "5m", "1h30m", or seconds{cap}'


@dataclass(frozen=True)
class HostPath:
    """A path on the host; `relative` ones are resolved against the file's directory."""

    relative: bool = False
    toml = "string"

    def allowed(self) -> str:
        return "a path, relative to this file's directory" if self.relative else "an absolute path"


@dataclass(frozen=True)
class Array:
    items: str = "strings"  # what it holds, for messages: "an array of IP addresses"
    toml = "array"

    def allowed(self) -> str:
        return f"an array of {self.items}"


@dataclass(frozen=True)
class SubTable:
    spec: TableSpec
    toml = "table"

    def allowed(self) -> str:
        return ""


@dataclass(frozen=True)
class TableArray:
    spec: TableSpec
    toml = "array of tables"

    def allowed(self) -> str:
        return ""


@dataclass(frozen=True)
class TableMap:
    """A table whose keys are names the user chooses; `entry` describes each value."""

    entry: Key
    name_rule: Callable[[str], str | None]  # why a name is refused, or None
    name_example: str
    toml = "table"

    def allowed(self) -> str:
        return f"keys are names like {show(self.name_example)}"


ValueType = (
    Text
    | Boolean
    | Integer
    | Choice
    | Size
    | Duration
    | HostPath
    | Array
    | SubTable
    | TableArray
    | TableMap
)


@dataclass(frozen=True)
class Key:
    """One key of a file, described once."""

    name: str
    type: ValueType
    meaning: str
    example: Any = None  # a valid TOML value that differs from the default (None for tables)
    # Examples valid when another key of the same table is the one given: (("zvol", ...),).
    examples: tuple[tuple[str, Any], ...] = ()
    field: str = ""  # model field; "" = `name`; "group.field" for a flattened group
    rule: Rule | None = None
    dump: Callable[[Any], Any] | None = None  # the model value back as TOML, where not plain
    only_with: tuple[str, str] | None = None  # (top-level key, value) this key needs
    required: str | None = None  # the message when missing (or an empty array of tables)
    default_doc: str | None = None  # for a default computed elsewhere (the file name)

    @property
    def target(self) -> str:
        return self.field or self.name


@dataclass(frozen=True)
class TableSpec:
    """The keys of one TOML table and the frozen dataclass they fill."""

    model: type[Any]
    keys: tuple[Key, ...]
    groups: tuple[tuple[str, type[Any]], ...] = ()  # fields whose keys sit flat in this table
    # Exactly one of these keys, each with what it is: ((key, what), ...).
    one_of: tuple[tuple[str, str], ...] = ()
    # At most one of these keys (two ways of saying one thing): ((key, what), ...).
    at_most_one: tuple[tuple[str, str], ...] = ()
    rule: TableRule | None = None

    @property
    def known(self) -> tuple[str, ...]:
        return tuple(key.name for key in self.keys)

    def key(self, name: str) -> Key:
        return next(key for key in self.keys if key.name == name)

    def default(self, key: Key) -> Any:
        """The model's default for `key`, or `NO_DEFAULT`."""
        group, dot, name = key.target.rpartition(".")
        model = dict(self.groups)[group] if dot else self.model
        return field_default(model, name)


class _NoDefault:
    def __repr__(self) -> str:
        return "NO_DEFAULT"


NO_DEFAULT: Any = _NoDefault()


def field_default(model: type[Any], name: str) -> Any:
    """The default of dataclass field `name` of `model`, or `NO_DEFAULT`."""
    for f in dataclasses.fields(model):
        if f.name == name:
            if f.default is not dataclasses.MISSING:
                return f.default
            if f.default_factory is not dataclasses.MISSING:
                return f.default_factory()
            return NO_DEFAULT
    raise KeyError(f"{model.__name__} has no field {name!r}")


def field_value(model: Any, target: str) -> Any:
    for name in target.split("."):
        model = getattr(model, name)
    return model


def dump(spec: TableSpec, model: Any) -> dict[str, Any]:
    """The keys of `model` that differ from their defaults, as the file writes them."""
    out: dict[str, Any] = {}
    for key in spec.keys:
        value = field_value(model, key.target)
        if value is None or value == spec.default(key):
            continue
        out[key.name] = dump_value(key, value)
    return out


def dump_value(key: Key, value: Any) -> Any:
    kind = key.type
    if key.dump is not None:
        return key.dump(value)
    if isinstance(kind, SubTable):
        return dump(kind.spec, value)
    if isinstance(kind, TableArray):
        return [dump(kind.spec, item) for item in value]
    if isinstance(kind, TableMap):
        items = value.items() if isinstance(value, Mapping) else value
        return {name: dump_value(kind.entry, item) for name, item in items}
    if isinstance(kind, Duration):
        # "1h30m" where milliseconds say it exactly; other values as plain seconds, which
        # TOML writes exactly and briefly (5e-324, not 324 digits).
        return format_duration(value) if round(value * 1000) / 1000 == value else value
    if isinstance(kind, Array):
        return list(value)
    return value


@dataclass(frozen=True)
class DocumentedKey:
    """One row of a key reference: everything a person (or a JSON Schema) needs."""

    path: str  # `cpus`, `disk[].path`, `loader_env.<name>`, `bridges.<name>.members`
    key: Key
    toml: str
    default: str
    allowed: str
    condition: str  # `only with loader = "uefi"`, or ""


def documented_keys(spec: TableSpec, prefix: str = "") -> list[DocumentedKey]:
    """Every key of `spec`, nested tables included, depth first in declaration order."""
    rows: list[DocumentedKey] = []
    one_of = [name for name, _what in spec.one_of]
    at_most_one = [name for name, _what in spec.at_most_one]
    for key in spec.keys:
        condition = ""
        if key.only_with is not None:
            condition = f"only with {key.only_with[0]} = {show(key.only_with[1])}"
        elif key.name in one_of:
            condition = "exactly one of " + ", ".join(f"`{name}`" for name in one_of)
        elif key.name in at_most_one:
            condition = "at most one of " + ", ".join(f"`{name}`" for name in at_most_one)
        rows.extend(_rows(key, f"{prefix}{key.name}", _default_text(spec, key), condition))
    return rows


def _rows(key: Key, path: str, default: str, condition: str = "") -> list[DocumentedKey]:
    kind = key.type
    row = DocumentedKey(path, key, kind.toml, default, kind.allowed(), condition)
    if isinstance(kind, SubTable):
        return [row, *documented_keys(kind.spec, f"{path}.")]
    if isinstance(kind, TableArray):
        return [row, *documented_keys(kind.spec, f"{path}[].")]
    if isinstance(kind, TableMap):
        return [row, *_rows(kind.entry, f"{path}.{kind.entry.name}", "none")]
    return [row]


def _default_text(spec: TableSpec, key: Key) -> str:
    if key.default_doc is not None:
        return key.default_doc
    if key.required is not None:
        return "required"
    default = spec.default(key)
    if default is NO_DEFAULT or default is None:
        return "none"
    if isinstance(key.type, SubTable | TableArray | TableMap):
        return "none"
    return toml_literal(dump_value(key, default))


def toml_literal(value: Any) -> str:
    """A scalar or an array of scalars as TOML writes it, in full."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string is a JSON string
    if isinstance(value, list):
        return "[" + ", ".join(toml_literal(item) for item in value) + "]"
    return repr(value)
