"""Placement: which guests of a fleet-wide conf.d this host runs, and where the others run.

Pure: the accepted specs, this host's name and the daemon config's `placement` in; the guests
for this host and, for each of the others, the host its file names out. One repository of guest
files is checked out on every host; a file's `host` key says which host runs the guest. A spec
without `host` runs here under `placement = "any"` (a single host) and nowhere under
`"required"` (a fleet, where an unplaced file is a mistake, not a guest for every host).

Host names compare without regard to case (DNS names are case-insensitive, and vm-bhyve's
`run.lock` stranded guests after a host name's case changed: churchers/vm-bhyve#465), so
both sides are kept lower-case.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal, get_args

from reconciler.spec import GuestSpec
from reconciler.valuerules import HOST_NAME_RE, HOST_NAME_RULE, MAX_HOST_NAME

PlacementMode = Literal["any", "required"]
PLACEMENTS: tuple[PlacementMode, ...] = get_args(PlacementMode)


def host_name_problem(name: str) -> str | None:
    """Why `name` cannot be a host name, or None."""
    if len(name) > MAX_HOST_NAME or HOST_NAME_RE.fullmatch(name) is None:
        return f"expected a host name: {HOST_NAME_RULE}, at most {MAX_HOST_NAME} in all"
    return None


def short_host_name(name: str) -> str:
    """`hostname -s`: the name up to its first dot, lower-case."""
    return name.split(".", 1)[0].lower()


@dataclass(frozen=True)
class Placed:
    """One host's share of the fleet: `here` runs on it; `elsewhere` maps every other guest
    to the host its file names (None: it names none, and placement is required)."""

    here: Mapping[str, GuestSpec]
    elsewhere: Mapping[str, str | None]


def host_of(spec: GuestSpec, host_name: str, mode: PlacementMode) -> str | None:
    """The host that runs `spec`: its own `host`, or this one when it names none and any host
    will do (None when it names none and placement is required)."""
    placed = spec.lifecycle.host
    if placed is None:
        return host_name if mode == "any" else None
    return placed


def place(guests: Mapping[str, GuestSpec], host_name: str, mode: PlacementMode) -> Placed:
    """Split `guests` into this host's and the others'. `host_name` is lower-case."""
    if mode == "any" and all(g.lifecycle.host in (None, host_name) for g in guests.values()):
        # The single-host case costs one look per guest and keeps the caller's mapping.
        return Placed(here=guests, elsewhere=MappingProxyType({}))
    here: dict[str, GuestSpec] = {}
    elsewhere: dict[str, str | None] = {}
    for name, spec in guests.items():
        host = host_of(spec, host_name, mode)
        if host == host_name:
            here[name] = spec
        else:
            elsewhere[name] = host
    return Placed(here=MappingProxyType(here), elsewhere=MappingProxyType(elsewhere))
