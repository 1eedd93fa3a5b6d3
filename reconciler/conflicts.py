"""Conflicts between guest files (DESIGN.md rule 4): who keeps a name, tap, disk or console.

Pure: valid specs with their files' mtimes, the previously accepted owners, and what is held
outside the files (taps the reconciler allocated) in; the accepted candidates and one
`ConflictError` per refused claim out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from reconciler.errors import ConflictError
from reconciler.spec import GuestSpec

ClaimKind = Literal["name", "tap", "disk", "console"]
# (kind, thing) -> the guest that holds it outside conf.d, e.g. ("tap", "tap3") -> "web".
Claims = Mapping[tuple[str, str], str]

_NMDM = "/dev/nmdm"
# A tap or a console exists once per host: guests placed on two named hosts may both use
# tap0. Names and disks stay unique across a fleet's files (a shared disk is one disk).
_HOST_LOCAL = frozenset({"tap", "console"})


@dataclass(frozen=True)
class Candidate:
    """A valid spec from one file, with the file's st_mtime_ns to order claims."""

    file: str
    spec: GuestSpec
    mtime_ns: int = 0


@dataclass(frozen=True)
class _Claim:
    kind: ClaimKind
    thing: str  # what is compared: a name, a tap, a device, an nmdm pair
    key: str  # where the file claims it
    shown: str  # how a message names it


def nmdm_pair(device: str) -> str | None:
    """The pair an nmdm device belongs to: nmdm(4) creates `/dev/nmdmXA` and `/dev/nmdmXB`
    together (sys/dev/nmdm/nmdm.c clones both ends of one name), so either end claims both."""
    if device.startswith(_NMDM) and len(device) > len(_NMDM) + 1 and device[-1] in "AB":
        return device[:-1]
    return None


def _claims(spec: GuestSpec) -> list[_Claim]:
    """Everything a guest holds exclusively."""
    device = spec.console_device
    pair = nmdm_pair(device)
    console = (
        _Claim("console", pair, "console", f"nmdm pair `{pair}A`/`{pair}B`")
        if pair is not None
        else _Claim("console", device, "console", f"`{device}`")
    )
    out = [_Claim("name", spec.name, "name", f"`{spec.name}`"), console]
    for index, nic in enumerate(spec.nics):
        if nic.tap is not None:
            out.append(_Claim("tap", nic.tap, f"nic[{index}].tap", f"`{nic.tap}`"))
    for index, disk in enumerate(spec.disks):
        key = f"disk[{index}].path" if disk.path is not None else f"disk[{index}].zvol"
        out.append(_Claim("disk", disk.device, key, f"`{disk.device}`"))
    return out


def _what(claim: _Claim) -> str:
    return "guest name" if claim.kind == "name" else claim.kind


def check_conflicts(
    candidates: Sequence[Candidate], incumbents: Mapping[str, str], held: Claims | None = None
) -> tuple[list[Candidate], list[ConflictError]]:
    """Accept the candidates that share nothing; refuse the rest with a `ConflictError` each.

    `incumbents` maps guest name -> file of the previously accepted set. Of two claims on one
    name, tap, disk or console, an incumbent (the same file still providing the same guest)
    keeps it; otherwise the earlier-changed file does (smaller mtime_ns, then smaller path).
    `held` are claims from outside the files, keyed (kind, thing): a file that claims one held
    for another guest is refused, whatever its rank. Accepted candidates come back in their
    input order.
    """
    held = held or {}

    def rank(candidate: Candidate) -> tuple[bool, int, str]:
        incumbent = incumbents.get(candidate.spec.name) == candidate.file
        return (not incumbent, candidate.mtime_ns, candidate.file)

    holders: dict[tuple[str, str], Candidate] = {}
    accepted: set[int] = set()
    errors: list[ConflictError] = []
    for index in sorted(range(len(candidates)), key=lambda i: rank(candidates[i])):
        candidate = candidates[index]
        claims = _claims(candidate.spec)
        clashes = [
            ConflictError(candidate.file, claim.key, message)
            for claim in claims
            if (message := _clash(claim, candidate, holders, held)) is not None
        ]
        if clashes:
            errors.extend(clashes)
            continue
        accepted.add(index)
        for claim in claims:
            holders[(claim.kind, claim.thing)] = candidate
    return [c for i, c in enumerate(candidates) if i in accepted], errors


def _clash(
    claim: _Claim, candidate: Candidate, holders: Mapping[tuple[str, str], Candidate], held: Claims
) -> str | None:
    """Why `candidate` cannot have `claim`, or None."""
    outside = held.get((claim.kind, claim.thing))
    if outside is not None and outside != candidate.spec.name:
        return f"{_what(claim)} {claim.shown} is held by guest `{outside}`"
    holder = holders.get((claim.kind, claim.thing))
    if holder is None:
        return None
    if claim.kind in _HOST_LOCAL and _apart(candidate.spec, holder.spec):
        return None
    # Two nmdm consoles named after their guests clash only when the names do, which is
    # already reported.
    if claim.kind == "console" and candidate.spec.console == holder.spec.console == "nmdm":
        return None
    return (
        f"{_what(claim)} {claim.shown} is already claimed by guest `{holder.spec.name}` "
        f"in {holder.file}"
    )


def _apart(a: GuestSpec, b: GuestSpec) -> bool:
    """Placed on two different named hosts (a guest without `host` may run anywhere)."""
    return None not in (a.lifecycle.host, b.lifecycle.host) and a.lifecycle.host != b.lifecycle.host
