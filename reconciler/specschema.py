"""The guest spec file as a JSON Schema (draft 4, what Taplo reads), generated from the one
description of every key (`guestkeys.GUEST`).

Pure. Types, allowed values, ranges, defaults and meanings come from the key description; each
code rule of `guestrules` has its counterpart in `RULES`, built from the same regexes and
character predicates (`schemapatterns`). What a JSON Schema cannot say stays the parser's alone:
two spellings of one passthru device ("2/0/0", "02/0/0"), a disk path and a zvol naming one
device, the PCI slots shared by disks, NICs and passthru together, and the one-hour cap of
`stop_timeout` as a sum of its parts ("1h0m1s"). Draft 4 is Taplo's: `enum` for constants, a
boolean `exclusiveMinimum`, no `if`/`then`, no `contains`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from reconciler import cloudinit_rules as ci_rules
from reconciler import diskrules
from reconciler import guestrules as rules
from reconciler import schemapatterns as pat
from reconciler.guestkeys import GUEST
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
    dump_value,
)
from reconciler.valuerules import HOST_NAME_RE, MAX_HOST_NAME, PATH_MAX

DRAFT = "http://json-schema.org/draft-04/schema#"
Schema = dict[str, Any]
_ZVOL_MAX = 255


def _patterns(*patterns: str) -> Schema:
    first, *rest = patterns
    schema: Schema = {"pattern": first}
    if rest:
        schema["allOf"] = [{"pattern": p} for p in rest]
    return schema


def _console(key: Key) -> Schema:
    return {"pattern": pat.anchored(f"nmdm|{pat.path_body()}"), "maxLength": PATH_MAX}


def _mac(key: Key) -> Schema:
    return {"pattern": pat.MAC, "not": {"pattern": pat.MAC_ZERO}}


def _listen(key: Key) -> Schema:
    return {**_patterns(*pat.listen_patterns()), "not": {"pattern": "\\.\\."}}


def _options(key: Key) -> Schema:
    """Flags once each, at most one sector size: with every item distinct there are at most
    five, so "two sector sizes" is one of ten pairs of positions."""
    flags = len(diskrules.DISK_FLAGS)
    sector = {"pattern": "^sectorsize="}
    pairs = [
        {"minItems": j + 1, "items": [{}] * i + [sector] + [{}] * (j - i - 1) + [sector]}
        for j in range(flags + 1)
        for i in range(j)
    ]
    item = {"anyOf": [{"enum": list(diskrules.DISK_FLAGS)}, {"pattern": pat.sectorsize_pattern()}]}
    return {
        "items": item,
        "uniqueItems": True,
        "maxItems": flags + 1,
        "not": {"anyOf": pairs},
    }


def _pci(key: Key) -> Schema:
    return {"uniqueItems": True, "maxItems": rules.PCI_CAPACITY}


def _host_name(key: Key) -> Schema:
    return {"pattern": pat.named(HOST_NAME_RE), "maxLength": MAX_HOST_NAME}


# A guestrules rule -> what it adds to its key's schema. Rules that only convert a value the
# type already checked map to nothing (`size_bytes`), and so do those a JSON Schema cannot
# say: `topology` (its product must equal `cpus`), `shared_storage` (the first disk must be an
# image file), the cloud-init texts (valid YAML, a known header).
RULES: dict[Callable[..., Any], Callable[[Key], Schema]] = {
    rules.guest_name: lambda key: {"pattern": pat.NAME},
    rules.memory: lambda key: {"pattern": pat.size_pattern(rules.MIN_MEMORY)},
    rules.console: _console,
    rules.passthru: lambda key: {"items": {"pattern": pat.passthru_pattern()}, **_pci(key)},
    rules.argv_text: lambda key: {"pattern": pat.no_invisible_pattern()},
    diskrules.disk_options: _options,
    diskrules.size_bytes: lambda key: {},
    diskrules.zvol: lambda key: {"pattern": pat.zvol_pattern(), "maxLength": _ZVOL_MAX},
    diskrules.disks: _pci,
    rules.tap: lambda key: {"pattern": pat.TAP},
    rules.interface: lambda key: {"pattern": pat.IFNAME},
    rules.mac: _mac,
    rules.nics: _pci,
    rules.listen: _listen,
    rules.grub_root: lambda key: {"pattern": pat.word_pattern(no_dash=True)},
    rules.grub_config: lambda key: {"pattern": pat.file_text_pattern()},
    rules.grub_word: lambda key: {"pattern": pat.word_pattern(no_dash=True)},
    rules.uuid: lambda key: {"pattern": pat.named(rules.UUID_RE)},
    rules.topology: lambda key: {},
    rules.host_name: _host_name,
    rules.shared_storage: lambda key: {},
    ci_rules.hostname: _host_name,
    ci_rules.address: lambda key: {"pattern": pat.interface_address_pattern()},
    ci_rules.ip_address: lambda key: {"pattern": pat.ip_pattern()},
    ci_rules.nameservers: lambda key: {"items": {"pattern": pat.ip_pattern()}},
    ci_rules.ssh_keys: lambda key: {
        "items": {"pattern": pat.ssh_key_pattern(ci_rules.SSH_KEY_TYPES)}
    },
    ci_rules.user_data: lambda key: {},
    ci_rules.network_config: lambda key: {},
}
# Name rules of tables of free names (TableMap) -> the pattern of a name.
NAME_RULES: dict[Callable[[str], str | None], str] = {
    rules.loader_variable_name: "^[A-Za-z_][A-Za-z0-9_.]*$",
}


def _integer(kind: Integer) -> Schema:
    schema: Schema = {"type": "integer"}
    if kind.low is not None:
        schema["minimum"] = kind.low
    if kind.high is not None:
        schema["maximum"] = kind.high
    return schema


def _host_path(kind: HostPath) -> Schema:
    return {
        "type": "string",
        "pattern": pat.path_pattern(absolute=not kind.relative),
        "maxLength": PATH_MAX,
    }


def _type_schema(key: Key) -> Schema:
    kind = key.type
    if isinstance(kind, Text):
        return {"type": "string"}
    if isinstance(kind, Boolean):
        return {"type": "boolean"}
    if isinstance(kind, Integer):
        return _integer(kind)
    if isinstance(kind, Choice):
        return {"type": "string", "enum": list(kind.choices)}
    if isinstance(kind, Size):
        return {"type": "string", "pattern": pat.size_pattern()}
    if isinstance(kind, Duration):
        return _duration(kind)
    if isinstance(kind, HostPath):
        return _host_path(kind)
    return _container(kind)


def _container(kind: Array | SubTable | TableArray | TableMap) -> Schema:
    if isinstance(kind, Array):
        return {"type": "array", "items": {"type": "string"}}  # every array here holds strings
    if isinstance(kind, SubTable):
        return table_schema(kind.spec)
    if isinstance(kind, TableArray):
        return {"type": "array", "items": table_schema(kind.spec)}
    return _table_map(kind)


def _duration(kind: Duration) -> Schema:
    schema: Schema = {
        "type": ["string", "number"],
        "pattern": pat.duration_pattern(kind.high),
        "minLength": 1,
        "minimum": 0,
        "exclusiveMinimum": True,
        "allOf": [{"pattern": "[1-9]"}],  # a string of zeros is no duration
    }
    if kind.high is not None:
        schema["maximum"] = kind.high
    return schema


def _table_map(kind: TableMap) -> Schema:
    name = NAME_RULES[kind.name_rule]
    return {
        "type": "object",
        "patternProperties": {name: key_schema(kind.entry)},
        "additionalProperties": False,
    }


def key_schema(key: Key, spec: TableSpec | None = None) -> Schema:
    """One key: its type's schema, its rule's, its meaning and (in `spec`) its default."""
    schema = _type_schema(key)
    if key.rule is not None:
        extra = RULES[key.rule](key)
        if "pattern" in extra and "pattern" in schema:
            schema.setdefault("allOf", []).append({"pattern": schema.pop("pattern")})
        for name, value in extra.items():
            if name == "items" and "items" in schema:
                schema["items"] = {**schema["items"], **value}
            elif name == "allOf":
                schema.setdefault("allOf", []).extend(value)
            else:
                schema[name] = value
    schema["description"] = _description(key, spec)
    if spec is not None and not isinstance(key.type, SubTable | TableArray | TableMap):
        default = spec.default(key)
        if default is not NO_DEFAULT and default is not None:
            schema["default"] = dump_value(key, default)
    if key.example is not None:
        schema["examples"] = [key.example]
    return schema


def _description(key: Key, spec: TableSpec | None) -> str:
    text = key.meaning[0].upper() + key.meaning[1:] + "."
    allowed = key.type.allowed()
    if allowed:
        text += f" Allowed: {allowed}."
    if key.default_doc is not None:
        text += f" Default: {key.default_doc}."
    if key.only_with is not None:
        text += f' Only with {key.only_with[0]} = "{key.only_with[1]}".'
    return text


def _only_with(spec: TableSpec, key: Key) -> Schema:
    """`key` may be set only when another key has a value (draft 4: no `if`)."""
    assert key.only_with is not None
    other, value = key.only_with
    equal: Schema = {"properties": {other: {"enum": [value]}}}
    if spec.default(spec.key(other)) != value:
        equal["required"] = [other]  # left out, the other key is at its default: not `value`
    return {"anyOf": [{"not": {"required": [key.name]}}, equal]}


def table_schema(spec: TableSpec) -> Schema:
    properties = {key.name: key_schema(key, spec) for key in spec.keys}
    for key in spec.keys:
        if isinstance(key.type, TableArray) and key.required is not None:
            properties[key.name]["minItems"] = 1
    schema: Schema = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    required = [key.name for key in spec.keys if key.required is not None]
    if required:
        schema["required"] = required
    if spec.one_of:
        schema["oneOf"] = [{"required": [name]} for name, _what in spec.one_of]
    conditions = [_only_with(spec, key) for key in spec.keys if key.only_with is not None]
    if conditions:
        schema["allOf"] = conditions
    return schema


def guest_schema() -> Schema:
    """The JSON Schema of a guest spec file (`conf.d/NAME.toml`)."""
    return {
        "$schema": DRAFT,
        "title": "bhyve-reconciler guest",
        "description": (
            "One bhyve guest, as a file in bhyve-reconciler's conf.d (generated by "
            "`bhyve-reconciler schema`). `bhyve-reconciler validate` checks what a schema "
            "cannot: devices shared between entries or files, the PCI slots in all."
        ),
        **table_schema(GUEST),
    }
