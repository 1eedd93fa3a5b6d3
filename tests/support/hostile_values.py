"""Values a hostile tester tried, and the keys they go in: characters a person cannot see, and
a TOML string that spells any text with escapes (tests/spec/test_hostile_values.py and
test_json_schema.py)."""

from __future__ import annotations

from collections.abc import Callable

DISK = '[[disk]]\npath = "/vm/a.img"\n'

# Zero-width space, zero-width joiner, left-to-right mark, right-to-left override, BOM
# (Cf); line and paragraph separators (Zl, Zp); no-break, em and ideographic spaces.
INVISIBLE = ["\u200b", "\u200d", "\u200e", "\u202e", "\ufeff", "\u2028", "\u2029", "\u00a0",
             "\u2003", "\u3000"]  # fmt: skip


def toml_string(value: str) -> str:
    return '"' + "".join(f"\\u{ord(c):04x}" for c in value) + '"'


PLACES: list[tuple[Callable[[str], str], str]] = [
    # (where the value goes, the key that must report it)
    (lambda v: f"[[disk]]\npath = {v}\n", "disk[0].path"),
    (lambda v: f"console = {v}\n" + DISK, "console"),
    (lambda v: f"[install]\niso = {v}\n" + DISK, "install.iso"),
    (lambda v: f'loader = "uefi"\n[uefi]\nfirmware = {v}\n' + DISK, "uefi.firmware"),
    (lambda v: f'loader = "grub"\n[grub]\nroot = {v}\n' + DISK, "grub.root"),
    (lambda v: f"[loader_env]\nautoboot_delay = {v}\n" + DISK, "loader_env.autoboot_delay"),
    (lambda v: f"name = {v}\n" + DISK, "name"),
    (lambda v: DISK + f"[[nic]]\nbridge = {v}\n", "nic[0].bridge"),
    (lambda v: DISK + f"[[nic]]\ntap = {v}\n", "nic[0].tap"),
    (lambda v: f"[[disk]]\nzvol = {v}\n", "disk[0].zvol"),
]
