"""A document of every key at its documented example, built from the key description itself
(`reconciler.schema`): for the description's own tests and the JSON Schema's."""

from __future__ import annotations

from typing import Any

from reconciler.schema import Key, SubTable, TableArray, TableMap, TableSpec


def example(key: Key, *, chosen: str | None = None, prefer: frozenset[str] = frozenset()) -> Any:
    """`key` at its example: the one for the table's `chosen` one-of key when it has one."""
    kind = key.type
    if isinstance(kind, SubTable):
        return example_table(kind.spec, prefer=prefer)
    if isinstance(kind, TableArray):
        # One table per alternative of a one-of (a disk's path or zvol).
        alternatives: list[str | None] = [name for name, _what in kind.spec.one_of] or [None]
        return [example_table(kind.spec, only=alt, prefer=prefer) for alt in alternatives]
    if isinstance(kind, TableMap):
        return {kind.name_example: example(kind.entry, prefer=prefer)}
    return dict(key.examples).get(chosen, key.example) if chosen else key.example


def example_table(
    spec: TableSpec,
    *,
    only: str | None = None,
    when: dict[str, Any] | None = None,
    prefer: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """Every key of `spec` at its example; of a one-of only `only` (default: the first), of an
    at-most-one the key in `prefer` (default: the first); keys that need another key's value
    only when `when` gives that value."""
    one_of = [name for name, _what in spec.one_of]
    chosen = only or (one_of[0] if one_of else None)
    exclusive = [name for name, _what in spec.at_most_one]
    kept = next((n for n in exclusive if n in prefer), exclusive[0] if exclusive else None)
    table: dict[str, Any] = dict(when or {})
    for key in spec.keys:
        if key.name in table or (key.name in one_of and key.name != chosen):
            continue
        if key.name in exclusive and key.name != kept:
            continue
        if key.only_with is not None and (when or {}).get(key.only_with[0]) != key.only_with[1]:
            continue
        table[key.name] = example(key, chosen=chosen, prefer=prefer)
    return table


def variants(spec: TableSpec) -> list[frozenset[str]]:
    """No preference, then each later alternative of every at-most-one group in the tree."""
    found: list[frozenset[str]] = [frozenset()]
    found += [frozenset({name}) for name, _what in spec.at_most_one[1:]]
    for key in spec.keys:
        if isinstance(key.type, SubTable | TableArray):
            found += variants(key.type.spec)[1:]
    return found


def conditions(spec: TableSpec) -> list[dict[str, Any]]:
    found = {key.only_with for key in spec.keys if key.only_with is not None}
    return [{name: value} for name, value in sorted(found)]
