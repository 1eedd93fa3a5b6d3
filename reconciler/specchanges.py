"""What changed between two scans of conf.d, for the log: which keys an edit changed, and which
broken files are valid again.

Pure: two snapshots in, (event, fields) pairs out; the daemon logs them. Keys are named as the
file spells them (`cpus`, `disk[0].size`, `loader_env.autoboot_delay`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from reconciler.guestfile import guest_to_toml
from reconciler.spec import GuestSpec
from reconciler.specdir import ConfSnapshot

Event = tuple[str, dict[str, Any]]


def _flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _flatten(item, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
        for index, item in enumerate(value):
            yield from _flatten(item, f"{prefix}[{index}]")
    else:
        yield prefix, value


def changed_keys(old: GuestSpec, new: GuestSpec) -> list[str]:
    """The keys whose value differs, as the file writes them (a key at its default is the same
    as a key left out)."""
    before = dict(_flatten(guest_to_toml(old)))
    after = dict(_flatten(guest_to_toml(new)))
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


def spec_events(previous: ConfSnapshot | None, current: ConfSnapshot) -> list[Event]:
    """`spec.changed` for every accepted guest whose spec changed (with its keys), and
    `spec.valid_again` for every file that had errors and now has none."""
    if previous is None:
        return []
    events: list[Event] = []
    for name, spec in sorted(current.guests.items()):
        old = previous.guests.get(name)
        if old is None or old is spec or old == spec:
            continue
        keys = changed_keys(old, spec)
        if keys:
            events.append(("spec.changed", {"guest": name, "file": spec.source, "keys": keys}))
    broken = {p.file for p in previous.errors}
    still = {p.file for p in current.errors}
    for file in sorted(broken - still):
        status = current.files.get(file)
        if status is not None and status.status == "valid":
            events.append(("spec.valid_again", {"file": file, "guest": status.guest}))
    return events
