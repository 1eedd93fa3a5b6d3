"""The accepted state: each guest's last accepted spec and the file that owns its name.

What the daemon follows when a file is broken, refused or untrusted (DESIGN.md rule 2), and
what a restarted daemon, `plan`, `apply` and `commands` start from, so a promise made while one
daemon ran still holds after it. Pure: one guest's entry to the text of its file in
`state_dir/accepted/NAME.toml` and back. That text is the guest's spec file as tomli-w writes
it, under a comment naming the owning file, so an admin can read it and diff it against the
file in conf_dir.
"""

from __future__ import annotations

from dataclasses import dataclass

import tomli_w

from reconciler.guestfile import guest_to_toml, parse_guest_text
from reconciler.spec import GuestSpec

_OWNER = "# accepted from: "
_HEADER = (
    "# bhyve-reconciler keeps this copy of the guest's last accepted spec; the file it names\n"
    "# above is the truth. Do not edit: it is rewritten whenever that file is accepted again.\n"
)


@dataclass(frozen=True)
class Accepted:
    """`spec` was accepted from `file`, which owns the guest's name until it is absent."""

    file: str
    spec: GuestSpec


def render(entry: Accepted) -> str:
    if "\n" in entry.file:
        raise ValueError(f"a spec file name cannot hold a newline: {entry.file!r}")
    return _OWNER + entry.file + "\n" + _HEADER + tomli_w.dumps(guest_to_toml(entry.spec))


def parse(name: str, text: str) -> Accepted:
    """The entry in `text` (a file written by `render`); ValueError saying what is wrong."""
    first, _, _ = text.partition("\n")
    if not first.startswith(_OWNER) or len(first) == len(_OWNER):
        raise ValueError(f"its first line does not name the owning file ({_OWNER.strip()} …)")
    file = first[len(_OWNER) :]
    spec, errors = parse_guest_text(text, file=file, stem=name)
    if spec is None:
        raise ValueError("; ".join(f"{e.key}: {e.message}" for e in errors[:3]))
    if spec.name != name:
        raise ValueError(f"it holds guest {spec.name!r}, not {name!r}")
    return Accepted(file=file, spec=spec)
