"""One vm-bhyve guest as a spec that boots the machine the guest knows: same disks, MACs, UUID,
CPU topology, firmware and PCI slots (`layout = "vm-bhyve"`).

Pure: the guest's parsed `.conf` and a `Source` in, a `GuestImport` out: the validated spec (or
none), every key carried over, every key dropped with the reason the guest boots the same
without it, every key that refuses the guest with the reason, and what the admin must do.
A guest is converted only when nothing it has is refused: a spec never boots a different
machine. Keys are read as lib/vm-run and lib/vm-guest read them (freebsd/vm-bhyve 89c21d0).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from reconciler.guestfile import parse_guest
from reconciler.guestkeys import MAX_CPUS
from reconciler.spec import GuestSpec
from reconciler.valuerules import NAME_RE, NAME_RULE
from reconciler.vmbhyve import devices_import as devices
from reconciler.vmbhyve.conf import ConfFile
from reconciler.vmbhyve.draft import Draft, Note, Source
from reconciler.vmbhyve.vocabulary import classify

FIRMWARE_DIR = "/usr/local/share/uefi-firmware"
# vm::uefi: the firmware each UEFI `loader` value boots (any other `uefi-*` boots the default).
_FIRMWARE = {
    "uefi-csm": f"{FIRMWARE_DIR}/BHYVE_UEFI_CSM.fd",
    "uefi-devel": f"{FIRMWARE_DIR}/BHYVE_UEFI_CODE-devel.fd",
}
_NUMBER_RE = re.compile(r"[1-9][0-9]{0,4}")
# bhyve's -m takes K/M/G/T (expand_number); vm-bhyve's templates also write `512MB`.
_MEMORY_RE = re.compile(r"([1-9][0-9]*)([KMGTkmgt])[Bb]?")
_NUMBERED_RE = re.compile(
    r"(?:disk|network)[0-9]+_[a-z]+|passthru[0-9]+(?:_options)?|grub_run[0-9]+"
)
_GAP = "vm-bhyve stops at the first gap in the numbering and never reads it"
DEFAULT_LOADER_TIMEOUT = "3"  # guest::load's loader_timeout default


@dataclass(frozen=True)
class GuestImport:
    """What became of one guest. `spec` is None when it is not converted (`refused` says why)."""

    name: str
    conf_path: str
    spec: GuestSpec | None
    carried: tuple[str, ...]
    dropped: tuple[Note, ...]
    refused: tuple[Note, ...]
    todo: tuple[str, ...]
    switches: tuple[str, ...]  # the switches its NICs are on


def convert_guest(name: str, conf: ConfFile, source: Source) -> GuestImport:
    """The spec of guest `name` (its `.conf` parsed), or why there is none."""
    conf_path = f"{source.ds_path}/{name}/{name}.conf"
    draft = Draft(name, conf)
    if NAME_RE.fullmatch(name) is None:
        draft.refuse("", f"the name {name!r} is not a guest name here ({NAME_RULE})")
    draft.refused += [Note(f"line {p.line}", p.message) for p in conf.problems]
    uefi = _loader(draft, source)
    _machine(draft)
    devices.disks(draft, source)
    devices.nics(draft, source)
    devices.passthru(draft)
    devices.graphics(draft, source, uefi=uefi)
    _layout(draft)
    _lifecycle(draft)
    _the_rest(draft)
    spec = None
    if not draft.refused:
        spec, errors = parse_guest(draft.doc, file=conf_path, stem=name)
        draft.refused += [Note(e.key, e.message) for e in errors]
    return GuestImport(
        name=name,
        conf_path=conf_path,
        spec=spec if not draft.refused else None,
        carried=tuple(draft.carried),
        dropped=tuple(draft.dropped),
        refused=tuple(draft.refused),
        todo=tuple(draft.todo),
        switches=tuple(draft.switches),
    )


def is_uefi_loader(loader: str) -> bool:
    """vm::run's `[ "${_loader%-*}" = "uefi" ]`: uefi, and uefi-ANYTHING."""
    return (loader.rsplit("-", 1)[0] if "-" in loader else loader) == "uefi"


def _number(draft: Draft, key: str, high: int) -> int | None:
    value = draft.text(key)
    if not value:
        return None
    if _NUMBER_RE.fullmatch(value) is None or int(value) > high:
        draft.refuse(key, f"{value!r} is not a number from 1 to {high}")
        return None
    return int(value)


def _machine(draft: Draft) -> None:
    """cpu (vm::__cpu), memory, uuid, and the options vm::run puts in `_opts`."""
    cpus = _number(draft, "cpu", MAX_CPUS)
    if not draft.conf.text("cpu"):
        draft.refuse("cpu", "missing: vm-bhyve refuses to start a guest without a cpu count")
    draft.doc["cpus"] = cpus or 1
    topology = {p: _number(draft, f"cpu_{p}", MAX_CPUS) for p in ("sockets", "cores", "threads")}
    if any(v is not None for v in topology.values()):
        draft.doc["topology"] = {p: v for p, v in topology.items() if v is not None}
    memory = draft.text("memory")
    match = _MEMORY_RE.fullmatch(memory)
    if match is None:
        draft.refuse("memory", f"{memory!r} is not a size with a K, M, G or T unit")
    else:
        draft.doc["memory"] = match.group(1) + match.group(2).upper()
    uuid = draft.text("uuid")
    if uuid:
        draft.doc["uuid"] = uuid
    else:
        draft.todo.append(
            "no uuid (vm-bhyve saves one at the first start, so the guest never "
            "ran): bhyve derives one from the host and guest names"
        )
    draft.doc["wire_memory"] = draft.yes("wired_memory")
    draft.doc["utc_clock"] = draft.yes("utctime", "yes")
    draft.doc["ignore_msrs"] = True  # vm::run's `_opts="-AHPw"` always ignores unknown MSRs
    draft.carry("cpu", "cpu_sockets", "cpu_cores", "cpu_threads", "memory", "uuid")
    draft.carry("wired_memory", "utctime", "ignore_msr")
    _host_side(draft)


def _host_side(draft: Draft) -> None:
    """hostbridge, comports and bhyve_options: carried where they change nothing here."""
    hostbridge = draft.text("hostbridge", "standard")
    # vm::bhyve_device_basic: `no*` means none, `amd` amd_hostbridge, anything else the
    # standard hostbridge the spec always has.
    if hostbridge.startswith("no") or hostbridge == "amd":
        draft.refuse("hostbridge", f"{hostbridge!r}: the spec's hostbridge is bhyve's standard one")
    comports = draft.text("comports", "com1").split()
    if comports != ["com1"]:
        draft.refuse("comports", "the spec has one serial console, on com1")
    options = draft.text("bhyve_options").split()
    if any(option != "-w" for option in options):
        draft.refuse(
            "bhyve_options", "raw bhyve options are not passed through; each must become a spec key"
        )
    draft.carry("hostbridge", "comports", "bhyve_options")


def _loader(draft: Draft, source: Source) -> bool:
    """The loader and what only it reads; whether the guest boots UEFI firmware."""
    loader = draft.text("loader")
    uefi = is_uefi_loader(loader)
    if uefi:
        _uefi(draft, source, loader)
    elif loader in ("bhyveload", "grub"):
        draft.doc["loader"] = loader
    else:
        draft.refuse("loader", f"{loader!r}: vm-bhyve boots bhyveload, grub and uefi*")
    if loader == "bhyveload":
        _bhyveload(draft)
    else:
        draft.drop("bhyveload_args", "read only with loader=bhyveload")
    if loader == "grub":
        _grub(draft)
    else:
        for key in ("grub_run_partition", "grub_run_dir", "grub_run_file"):
            draft.drop(key, "read only with loader=grub")
    if loader not in ("bhyveload", "grub"):
        draft.drop("loader_timeout", "read only by bhyveload and grub-bhyve")
    if not uefi:
        draft.drop("uefi_vars", "read only for UEFI guests")
    draft.carry("loader")
    return uefi


def _uefi(draft: Draft, source: Source, loader: str) -> None:
    """vm::uefi: the firmware, and the variable store vm-run copies next to the guest."""
    draft.doc["loader"] = "uefi"
    uefi = draft.table("uefi")
    if loader == "uefi-custom":
        uefi["firmware"] = f"{source.ds_path}/.config/BHYVE_UEFI.fd"
    elif loader in _FIRMWARE:
        uefi["firmware"] = _FIRMWARE[loader]
    if draft.yes("uefi_vars"):
        uefi["vars"] = True
        path = f"{source.ds_path}/{draft.name}/uefi-vars.fd"
        if source.file_exists(path):
            uefi["vars_file"] = path
        else:
            draft.todo.append(
                f"{path} does not exist (the guest never ran): the daemon keeps "
                "the variables in a fresh copy of the template, as vm-bhyve would"
            )
        draft.carry("uefi_vars")


def _bhyveload(draft: Draft) -> None:
    """guest::load's `-e` variables, then bhyveload_args' `-e NAME=VALUE` pairs."""
    env = {"autoboot_delay": draft.text("loader_timeout", DEFAULT_LOADER_TIMEOUT)}
    if draft.conf.text("uuid"):
        env = {"smbios.system.uuid": draft.conf.text("uuid"), **env}
    env["bhyve_vm_name"] = draft.name
    words = draft.text("bhyveload_args").split()
    pairs = list(zip(words[::2], words[1::2], strict=False))
    if len(words) % 2 or any(flag != "-e" or "=" not in var for flag, var in pairs):
        draft.refuse(
            "bhyveload_args", "only `-e NAME=VALUE` arguments have a counterpart ([loader_env])"
        )
        return
    for _flag, var in pairs:
        name, _, value = var.partition("=")
        if name in env:
            draft.refuse("bhyveload_args", f"sets {name} again: the spec holds one value each")
            return
        env[name] = value
    draft.doc["loader_env"] = env
    draft.carry("loader_timeout", "bhyveload_args")


def _grub(draft: Draft) -> None:
    """guest::load for grub: the root, grub_run_dir/file, or grub_runN as a grub.cfg."""
    partition = draft.text("grub_run_partition")
    root = f"hd0,{partition}" if partition else "hd0,1"
    commands: list[str] = []
    while draft.text(f"grub_run{len(commands)}"):
        commands.append(draft.text(f"grub_run{len(commands)}"))
    if commands:
        timeout = draft.text("loader_timeout", DEFAULT_LOADER_TIMEOUT)
        lines = [
            f"timeout={timeout}",
            f"menuentry '{draft.name} (bhyve run)' {{",
            f"    root={root}",
        ]
        lines += [f"    {command}" for command in commands if command != "boot"]
        draft.table("grub")["config"] = "".join(f"{line}\n" for line in [*lines, "}"])
        draft.carry(*(f"grub_run{n}" for n in range(len(commands))), "loader_timeout")
        for key in ("grub_run_dir", "grub_run_file"):
            draft.drop(key, "vm-bhyve does not read it when grub_run0 is set")
    else:
        draft.table("grub")["root"] = root
        settings = {
            "grub_run_dir": draft.text("grub_run_dir"),
            "grub_run_file": draft.text("grub_run_file"),
        }
        draft.table("vm_bhyve").update({k: v for k, v in settings.items() if v})
        draft.carry("grub_run_dir", "grub_run_file")
        draft.drop("loader_timeout", "grub-bhyve gets it only inside a grub.cfg vm-bhyve writes")
    draft.carry("grub_run_partition")


def _layout(draft: Draft) -> None:
    """vm-bhyve's PCI layout, with its start_slot, install_slot and ahci_device_limit."""
    draft.doc["layout"] = "vm-bhyve"
    table = draft.table("vm_bhyve")
    for key in ("start_slot", "install_slot"):
        value = _number(draft, key, 30)
        if value is not None:
            table[key] = value
    limit = draft.text("ahci_device_limit")
    # vm::bhyve_device_disks uses it only when it is a number from 2 to 32; else 1.
    if limit.isdigit() and 1 < int(limit) <= 32:
        table["ahci_device_limit"] = int(limit)
    draft.carry("start_slot", "install_slot", "ahci_device_limit")


def _lifecycle(draft: Draft) -> None:
    """vm::handle_exit: a fault ends the guest unless on_fault=restart; `restart = "never"`
    is the same. A guest's own reboot always boots it again here."""
    if draft.text("on_fault", "shutdown") != "restart":
        draft.doc["restart"] = "never"
    draft.carry("on_fault")
    if draft.text("on_restart", "restart") == "restart":
        draft.carry("on_restart")
    else:
        draft.drop("on_restart", "the daemon boots a guest that rebooted itself again")


def _the_rest(draft: Draft) -> None:
    """Every key not looked at yet: dropped, refused, or not read by vm-bhyve at all."""
    for key in (setting.key for setting in draft.conf.settings):
        if key in draft.seen:
            continue
        found = classify(key)
        if found is not None and found[0] == "refused":
            draft.refuse(key, found[1])
        elif found is not None:
            draft.drop(key, found[1])
        elif _NUMBERED_RE.fullmatch(key):
            draft.drop(key, _GAP)
        else:
            draft.drop(key, "vm-bhyve does not read it")
