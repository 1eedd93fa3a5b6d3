"""Guest files: which names in conf.d are guest specs, TOML to a `GuestSpec`, and back.

Pure: text or bytes in, a spec or every `SpecError` of the file out (each naming the file and
the key). Text goes through the bounded loader (`tomlload`); tables are checked against the one
description of every key (`guestkeys.GUEST`), whose defaults are the `spec` dataclasses'.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from reconciler.cloudinit_rules import guest_name_problem
from reconciler.errors import SpecError
from reconciler.guestkeys import GUEST
from reconciler.guestrules import name_from_file
from reconciler.schema import dump
from reconciler.spec import GuestSpec
from reconciler.tomlload import load_toml
from reconciler.tomlreader import Reader, Section, build, read_table

SUFFIX = ".toml"


def is_spec_file_name(name: str) -> bool:
    """Whether `name` (relative to conf.d) is a guest spec: a top-level `*.toml` that no editor
    or deployment tool uses as scratch space (dotfiles, `#…#` autosaves, `~` backups, swap
    files, vim's `4913` probe). The one rule for the directory scan and the watcher."""
    return (
        "/" not in name
        and name.endswith(SUFFIX)
        and len(name) > len(SUFFIX)
        and not name.startswith((".", "#", "~"))
    )


def parse_guest(
    data: Mapping[str, Any], *, file: str, stem: str
) -> tuple[GuestSpec | None, list[SpecError]]:
    """Validate one guest's parsed TOML; the spec, or None and every error in the file.

    `stem` is the file name without `.toml`, the guest's name unless `name` is set.
    """
    reader = Reader(file)
    top = Section(reader, data, "", GUEST.known)
    values = read_table(top, GUEST)
    name = values.get("name") if "name" in top else name_from_file(top, stem)
    cloud_init = values.get("cloud_init")
    if name is not None and cloud_init is not None and cloud_init.hostname is None:
        problem = guest_name_problem(name)  # the name is the guest's host name
        if problem is not None:
            top.error("cloud_init.hostname", problem)
    if reader.count or name is None:
        return None, reader.errors
    spec: GuestSpec = build(GUEST, {**values, "name": name, "source": file})
    return spec, []


def parse_guest_text(
    source: str | bytes, *, file: str, stem: str
) -> tuple[GuestSpec | None, list[SpecError]]:
    """`parse_guest` on a file's content, text or UTF-8 bytes; a file that is too large, not
    UTF-8, nested too deep or not TOML has that one error."""
    data, errors = load_toml(source, file=file)
    if data is None:
        return None, errors
    return parse_guest(data, file=file, stem=stem)


def guest_to_toml(spec: GuestSpec) -> dict[str, Any]:
    """The guest file of `spec` (for tomli-w): `name` and every key that differs from its
    default. `parse_guest_text(tomli_w.dumps(guest_to_toml(spec)), ...)` gives `spec` back,
    `source` aside; a cloud-init file that was read comes back inline (its text), so the
    copy stands alone and boots the same seed (`boot_key` is equal)."""
    if spec.cloud_init is not None:
        spec = replace(spec, cloud_init=spec.cloud_init.inlined())
    return dump(GUEST, spec)
