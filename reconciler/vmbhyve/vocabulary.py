"""What becomes of each vm-bhyve guest key that has no place in a spec: dropped (the guest
boots the same without it) or refused (the guest would not see the machine it had).

Pure data and one classifier. The keys are those lib/vm-run, lib/vm-guest, lib/vm-core and
lib/vm-rctl read at freebsd/vm-bhyve 89c21d0, and sample-templates/config.sample documents;
the keys the importer carries over are handled in `convert` and `devices_import`.
"""

from __future__ import annotations

import re

# Keys whose absence changes nothing the guest sees: (reason).
DROPPED: dict[str, str] = {
    "ignore_bad_msr": "vm-bhyve never reads it (vm-run reads ignore_msr)",
    "debug": "bhyve's output goes to the daemon's log already",
    "prestart": "the daemon runs no prestart script: run it another way if it is needed",
    "priority": "the daemon sets no process priority (vm-bhyve's rctl::set)",
    "tags": "specs have no tags",
    "zfs_dataset_opts": "only read when vm-bhyve creates the guest",
    "zfs_zvol_opts": "only read when vm-bhyve creates a disk",
    "grub_run_no_partition": "vm-bhyve never applies it: its `[ config::yesno ... ]` test is "
    "a test(1) syntax error",
}

# Keys that add a device or an option the spec cannot give: (reason).
REFUSED: dict[str, str] = {
    "virt_random": "the spec has no virtio-rnd device",
    "sound": "the spec has no hda sound device",
    "sound_play": "the spec has no hda sound device",
    "sound_rec": "the spec has no hda sound device",
    "fwcfg": "the spec has no lpc fwcfg option",
    "graphics_vga": "the spec's framebuffer has no vga= option",
    "vnc_password": "the spec's framebuffer has no password (a spec file is readable by all)",
    "bhyveload_loader": "the spec has no bhyveload -l",
    "nulliso_fix": "the spec has no placeholder CD for old UEFI firmware",
}

_RCTL = "the daemon applies no rctl(8) limits: set them with rctl(8) if they are needed"
_FAMILIES: tuple[tuple[re.Pattern[str], str, str], ...] = (
    (re.compile(r"limit_[a-z]+"), "dropped", _RCTL),
    (re.compile(r"disk[0-9]+_size"), "dropped", "only read when vm-bhyve creates the disk"),
    (re.compile(r"grub_install[0-9]+"), "dropped", "only used by `vm install`: to reinstall, "
     "add [install] and, if needed, [grub] config"),
    (re.compile(r"virt_console[0-9]+"), "refused", "the spec has no virtio-console device"),
)  # fmt: skip


def classify(key: str) -> tuple[str, str] | None:
    """("dropped" or "refused", reason) for a key the importer does not carry over, or None
    when vm-bhyve does not read the key at all."""
    if key in DROPPED:
        return "dropped", DROPPED[key]
    if key in REFUSED:
        return "refused", REFUSED[key]
    for pattern, kind, reason in _FAMILIES:
        if pattern.fullmatch(key):
            return kind, reason
    return None
