"""A vm-bhyve guest's devices as spec tables: disks, NICs, passthru and the framebuffer.

Pure: keys read through a `Draft`, `[[disk]]`, `[[nic]]`, `passthru` and `[graphics]` written
into its document. Each device is read as lib/vm-run reads it (freebsd/vm-bhyve 89c21d0): the
numbered keys stop at the first gap, a disk needs a name and a type, a NIC a type.
"""

from __future__ import annotations

import posixpath
import re
from typing import Any

from reconciler.spec import DISK_EMULATIONS, NIC_EMULATIONS
from reconciler.valuerules import IFNAME_RE, TAP_RE
from reconciler.vmbhyve.conf import is_yes
from reconciler.vmbhyve.draft import Draft, Source

_RES_RE = re.compile(r"([0-9]{1,5})x([0-9]{1,5})")


def disks(draft: Draft, source: Source) -> None:
    """vm::bhyve_device_disks and vm::get_disk_path."""
    num = 0
    while draft.text(f"disk{num}_name") and draft.text(f"disk{num}_type"):
        keys = [f"disk{num}_{part}" for part in ("name", "type", "dev", "opts")]
        disk = _disk(draft, source, num)
        if disk is not None:
            draft.doc.setdefault("disk", []).append(disk)
            draft.carry(*keys)
        draft.account(f"disk{num}_")
        num += 1


def _disk(draft: Draft, source: Source, num: int) -> dict[str, Any] | None:
    name, kind = draft.text(f"disk{num}_name"), draft.text(f"disk{num}_type")
    dev, opts = draft.text(f"disk{num}_dev", "file"), draft.text(f"disk{num}_opts")
    if kind not in DISK_EMULATIONS:
        draft.refuse(
            f"disk{num}_type", f"{kind!r}: the spec's disks are " + ", ".join(DISK_EMULATIONS)
        )
        return None
    disk: dict[str, Any] = {"emulation": kind}
    if dev in ("zvol", "sparse-zvol"):
        if source.zfs_dataset is None:
            draft.refuse(
                f"disk{num}_dev",
                "a zvol disk: give the datastore's ZFS dataset (--zfs-dataset POOL/DATASET)",
            )
            return None
        disk["zvol"] = f"{source.zfs_dataset}/{draft.name}/{name}"
        if not source.file_exists(f"/dev/zvol/{disk['zvol']}"):
            draft.todo.append(
                f"disk{num}: /dev/zvol/{disk['zvol']} does not exist: the guest cannot boot "
                "until it does"
            )
    elif dev in ("iscsi", "9p"):
        draft.refuse(f"disk{num}_dev", f"{dev!r} disks have no counterpart in a spec")
        return None
    else:
        # `custom` is the path as written; anything else is a file in the guest's directory
        # (get_disk_path's `*` case).
        path = name if dev == "custom" else posixpath.join(source.ds_path, draft.name, name)
        disk["path"] = path
        if not source.file_exists(path):
            draft.todo.append(
                f"disk{num}: {path} does not exist: the guest cannot boot until it does"
            )
    if opts:
        disk["options"] = opts.split(",")
    return disk


def nics(draft: Draft, source: Source) -> None:
    """vm::bhyve_device_networking and switch::provision."""
    num = 0
    while draft.text(f"network{num}_type"):
        nic = _nic(draft, source, num)
        if nic is not None:
            draft.doc.setdefault("nic", []).append(nic)
        draft.account(f"network{num}_")
        num += 1


def _nic(draft: Draft, source: Source, num: int) -> dict[str, Any] | None:
    key = f"network{num}"
    kind, switch = draft.text(f"{key}_type"), draft.text(f"{key}_switch")
    if kind not in NIC_EMULATIONS:
        draft.refuse(f"{key}_type", f"{kind!r}: the spec's NICs are " + ", ".join(NIC_EMULATIONS))
        return None
    if draft.yes(f"{key}_span"):
        draft.refuse(
            f"{key}_span",
            "a span port sees the bridge's traffic without being a "
            "member; the daemon only adds members",
        )
        return None
    nic: dict[str, Any] = {"emulation": kind}
    bridge = _bridge(draft, source, key, switch)
    if bridge is False:
        return None
    if isinstance(bridge, str):
        nic["bridge"] = bridge
    mac = draft.text(f"{key}_mac")
    if mac:
        nic["mac"] = mac
    else:
        draft.todo.append(
            f"{key} has no fixed MAC (vm-bhyve saves one at the first start, so "
            "the guest never ran): bhyve derives one from the slot and name"
        )
    device = draft.text(f"{key}_device")
    if device and TAP_RE.fullmatch(device) is None:
        draft.refuse(f"{key}_device", f"{device!r}: a spec's NIC is a tap (tapN)")
        return None
    if device:
        nic["tap"] = device
    elif draft.text(f"{key}_name"):
        draft.drop(
            f"{key}_name",
            "the daemon names the taps it makes tapN (a firewall rule "
            "that names the tap must change)",
        )
    draft.carry(f"{key}_type", f"{key}_switch", f"{key}_mac", f"{key}_device")
    return nic


def _bridge(draft: Draft, source: Source, key: str, switch: str) -> str | bool:
    """The bridge the NIC's tap joins, True for none (as in vm-bhyve), False if refused."""
    if not switch:
        draft.refuse(
            f"{key}_switch",
            "no switch: vm-bhyve gives the guest no device for this "
            "NIC yet moves the next devices a slot on; give it a switch or remove it",
        )
        return False
    found = source.system.switch(switch)
    if found.type == "standard":
        if switch not in draft.switches:
            draft.switches.append(switch)
        if not found.listed:
            draft.todo.append(
                f"{key}: switch {switch!r} is not in system.conf's switch_list, "
                "so vm-bhyve adds its tap to no bridge; neither does the spec"
            )
            return True
        return source.bridges[switch]
    if found.type == "manual":
        bridge = found.bridge or ""
        if IFNAME_RE.fullmatch(bridge) is None:
            draft.refuse(
                f"{key}_switch",
                f"manual switch {switch!r} uses bridge {bridge!r}, "
                "which is not an interface name the spec takes",
            )
            return False
        if switch not in draft.switches:
            draft.switches.append(switch)
        return bridge
    draft.refuse(
        f"{key}_switch",
        f"switch {switch!r} is a {found.type} switch; the daemon "
        "puts taps in if_bridge bridges only",
    )
    return False


def passthru(draft: Draft) -> None:
    """vm::bhyve_device_passthru: `B/S/F` devices; `B/S/F=S:F` fixes the guest slot."""
    devices: list[str] = []
    num = 0
    while draft.text(f"passthru{num}"):
        device, options = draft.text(f"passthru{num}"), draft.text(f"passthru{num}_options")
        if "=" in device:
            draft.refuse(
                f"passthru{num}", "a fixed guest slot (`=SLOT:FUNC`) has no counterpart in a spec"
            )
        elif options:
            draft.refuse(f"passthru{num}_options", "the spec's passthru devices take no options")
        else:
            devices.append(device)
            draft.carry(f"passthru{num}")
        num += 1
    if devices:
        draft.doc["passthru"] = devices


def graphics(draft: Draft, source: Source, *, uefi: bool) -> None:
    """vm::bhyve_device_fbuf (UEFI guests only) and vm::bhyve_device_mouse (any guest)."""
    keys = ("graphics", "graphics_port", "graphics_listen", "graphics_res", "graphics_wait")
    tablet = draft.yes("xhci_mouse")
    if not uefi:
        for key in keys:
            draft.drop(key, "vm-bhyve gives only UEFI guests a framebuffer")
    if not uefi or not draft.yes("graphics"):
        if tablet:
            draft.refuse(
                "xhci_mouse",
                "the spec's USB tablet comes with a UEFI framebuffer ([graphics] tablet) only",
            )
        return
    port = draft.text("graphics_port") or (str(source.vnc_port) if source.vnc_port else "")
    if not draft.conf.text("graphics_port"):
        draft.todo.append(
            f"graphics_port is unset: vm-bhyve takes the first free port from "
            f"5900 at each start; the spec fixes {port}"
        )
    table = draft.table("graphics")
    table["listen"] = f"{draft.text('graphics_listen') or '0.0.0.0'}:{port}"
    res = draft.text("graphics_res")
    match = _RES_RE.fullmatch(res)
    if res and match is None:
        draft.refuse("graphics_res", f"{res!r} is not WIDTHxHEIGHT")
        return
    if match is not None:
        table["width"], table["height"] = int(match.group(1)), int(match.group(2))
    wait = draft.text("graphics_wait", "auto")
    if wait == "auto":
        table["wait_install"] = True  # vm-run waits only while installing
    elif is_yes(wait):
        table["wait"] = True
    if tablet:
        table["tablet"] = True
    draft.carry(*keys, "xhci_mouse")
