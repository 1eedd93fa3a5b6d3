"""What vm-bhyve's `vm _run NAME [ISO]` would run for a guest: the loader, then bhyve.

Pure: a parsed guest `.conf`, the parsed system.conf and `RunFacts` in, argv tuples and the
files vm-bhyve writes for the loader out. This is a model of lib/vm-run's `vm::run` and
lib/vm-guest's `guest::load` at freebsd/vm-bhyve 89c21d0 (line numbers below are lib/vm-run's),
built from their code and nothing else: it is the oracle an imported guest's command lines are
checked against, so it must never be derived from reconciler/bhyve.py. It models the first
boot of a run (vm-run's loop changes `graphics_wait=auto`, the ISO and `-Y` on later ones).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from reconciler.vmbhyve.conf import ConfFile
from reconciler.vmbhyve.devices import DeviceBuilder
from reconciler.vmbhyve.facts import RunFacts, VmRunRefused, VmRunUnmodelled
from reconciler.vmbhyve.load import LoadInput, loader_commands
from reconciler.vmbhyve.system import SystemConf
from reconciler.vmbhyve.words import split_words

UEFI_FIRMWARE_DIR = "/usr/local/share/uefi-firmware"
# vm::uefi (vm-run:296-309): the firmware each `loader` value selects.
UEFI_FIRMWARE = {
    "uefi-devel": f"{UEFI_FIRMWARE_DIR}/BHYVE_UEFI_CODE-devel.fd",
    "uefi-csm": f"{UEFI_FIRMWARE_DIR}/BHYVE_UEFI_CSM.fd",
}
DEFAULT_UEFI_FIRMWARE = f"{UEFI_FIRMWARE_DIR}/BHYVE_UEFI.fd"
# `grep -iqs '.iso$'` (vm-run:175): a regular expression, so `.` is any character.
_ISO_NAME_RE = re.compile(r".iso\Z", re.IGNORECASE)


@dataclass(frozen=True)
class VmRunCommands:
    """One boot as vm-bhyve runs it: write `files`, run `loader` (None for UEFI), run `bhyve`."""

    loader: tuple[str, ...] | None
    bhyve: tuple[str, ...]
    files: tuple[tuple[str, str], ...]
    taps: tuple[str, ...]  # the taps vm-run created for this boot (destroyed when it ends)
    warnings: tuple[str, ...]  # what vm-run logs and carries on from


def _cpu(conf: ConfFile) -> str:
    """vm::__cpu (vm-run:1085): `cpu`, then `,sockets=`, `,cores=`, `,threads=` when set."""
    cpu = conf.text("cpu")
    if not cpu:
        raise VmRunRefused("fatal; unable to determine cpu count")
    for name in ("sockets", "cores", "threads"):
        if conf.text(f"cpu_{name}"):
            cpu += f",{name}={conf.text(f'cpu_{name}')}"
    return cpu


def uefi_loader(loader: str) -> bool:
    """vm-run:102 `[ "${_loader%-*}" = "uefi" ]`: strip the shortest `-...` suffix."""
    return (loader.rsplit("-", 1)[0] if "-" in loader else loader) == "uefi"


def _bootrom(name: str, conf: ConfFile, facts: RunFacts, loader: str) -> str:
    """vm::uefi (vm-run:293): `-l bootrom,FIRMWARE[,VARS]`."""
    if loader == "uefi-custom":
        firmware = f"{facts.ds_path}/.config/BHYVE_UEFI.fd"
    else:
        firmware = UEFI_FIRMWARE.get(loader, DEFAULT_UEFI_FIRMWARE)
    if conf.yesno("uefi_vars"):
        firmware += f",{facts.ds_path}/{name}/uefi-vars.fd"  # copied from BHYVE_UEFI_VARS.fd
    return f" -l bootrom,{firmware}"


def _opts(name: str, conf: ConfFile, facts: RunFacts, cpu: str, uuid: str) -> str:
    """_opts up to vm-run:130, before the device functions append to it."""
    loader, memory = conf.text("loader"), conf.text("memory")
    opts = "-AHPw"  # vm-run:96
    if conf.yesno("ignore_msr"):
        opts += "w"  # vm-run:99 (config.sample's `ignore_bad_msr` is never read)
    if uefi_loader(loader):
        opts += _bootrom(name, conf, facts, loader)
    if conf.text("bhyve_options"):
        opts += f" {conf.text('bhyve_options')}"  # vm-run:107
    if conf.yesno("wired_memory"):
        opts += " -S"  # vm-run:120
    opts = f"-c {cpu} -m {memory} {opts} -U {uuid}"  # vm-run:124-125
    if conf.yesno("utctime", "yes"):
        opts += " -u"  # vm-run:128
    return opts


def _iso_device(conf: ConfFile, facts: RunFacts) -> str:
    """_iso_dev (vm-run:174-185): the install media, or null.iso with nulliso_fix."""
    slot = conf.text("install_slot", "3")  # only ever substituted, never computed
    if facts.iso:
        if _ISO_NAME_RE.search(facts.iso):
            return f"-s {slot}:0,ahci-cd,{facts.iso},ro,bootindex=1"
        return f"-s {slot}:0,ahci-hd,{facts.iso},ro"
    if conf.text("loader") == "uefi" and conf.yesno("nulliso_fix"):
        return f"-s {slot}:0,ahci-cd,{facts.vm_dir}/.config/null.iso"
    return ""


def _comports(name: str, conf: ConfFile, foreground: bool) -> tuple[str, str]:
    """vm::bhyve_device_comports (vm-run:394): (_comstring, _com) for `comports`."""
    comstring, com = "", ""
    for number, port in enumerate(conf.text("comports", "com1").split(), start=1):
        if number == 1 and foreground:
            comstring = f"-l {port},stdio"
            continue
        device = f"/dev/nmdm-{name}.{number}"
        if number == 1:
            com = f"{device}A"
        comstring += (" " if comstring else "") + f"-l {port},{device}A"
    return comstring, com


def _words(text: str, what: str) -> list[str]:
    words = split_words(text)
    if words is None:
        raise VmRunUnmodelled(f"{what} holds a shell pattern (`*`, `?`, `[`): sh would expand it")
    return words


def _build_devices(
    name: str, conf: ConfFile, system: SystemConf, facts: RunFacts, *, uefi: bool
) -> DeviceBuilder:
    builder = DeviceBuilder(name, conf, system, facts, uefi=uefi)
    builder.basic(conf.text("hostbridge", "standard"), conf.text("fwcfg"))  # vm-run:42-43
    builder.disks()
    builder.networking()
    builder.rand()
    builder.passthru()
    builder.fbuf(installing=bool(facts.iso))
    builder.mouse()
    builder.sound()
    builder.console()
    return builder


def vm_run_commands(
    name: str, conf: ConfFile, system: SystemConf, facts: RunFacts
) -> VmRunCommands:
    """The loader and bhyve argv vm-run builds for `name` on its first boot.

    Raises `VmRunRefused` where vm-run stops before bhyve (its `fatal;` exits) and
    `VmRunUnmodelled` where it would ask the host something `facts` does not answer.
    """
    uuid = conf.text("uuid") or facts.new_uuid or ""  # vm-run:52-55: uuidgen, saved
    if not uuid:
        raise VmRunUnmodelled("the guest has no uuid: vm-bhyve would generate one with uuidgen")
    cpu = _cpu(conf)
    loader, memory = conf.text("loader"), conf.text("memory")
    if not loader or not memory:
        raise VmRunRefused("fatal; unable to start - missing required configuration")
    uefi = uefi_loader(loader)
    opts = _opts(name, conf, facts, cpu, uuid)
    foreground = facts.foreground or system.console == "tmux"
    comstring, com = _comports(name, conf, foreground)
    devices = _build_devices(name, conf, system, facts, uefi=uefi)
    opts += devices.opts_tail
    if devices.cursor.bus >= 1:
        opts += " -Y"  # vm-run:203: more than one PCI bus, no MP table
    bhyve = _words(devices.devices, "the device list") + _words(opts, "the bhyve options")
    if facts.resume:
        bhyve += ["-r", f"{facts.ds_path}/{name}/{name}.save"]  # vm-run:222, one word
    bhyve += _words(f"{_iso_device(conf, facts)} {comstring}", "the ISO or com ports")
    # vm-run:243: bhyve ${_devices} $@ ${_iso_dev} ${_comstring} ${_name}
    bhyve = ["bhyve", *bhyve, name]
    if uefi:
        return VmRunCommands(None, tuple(bhyve), (), tuple(devices.taps), tuple(devices.warnings))
    disk0 = conf.text("disk0_name")
    dev0 = conf.text("disk0_dev", "file")
    more: list[str] = []
    # guest::__map_all_disks lists disk1, disk2, ... in grub's device.map while they have names.
    while loader == "grub" and conf.text(f"disk{len(more) + 1}_name"):
        num = len(more) + 1
        more.append(devices.disk_path(conf.text(f"disk{num}_name"), conf.text(f"disk{num}_dev")))
    load = loader_commands(
        LoadInput(
            name=name,
            conf=conf,
            loader=loader,
            memory=memory,
            uuid=uuid,
            com=com,
            wired=conf.yesno("wired_memory") or devices.wired,
            bootdisk=devices.disk_path(disk0, dev0) if disk0 else "",
            bootdisk_dev=dev0,
            ds_path=facts.ds_path,
            iso=facts.iso,
            foreground=foreground,
            grub_bhyve=facts.grub_bhyve,
            disk_paths=tuple(more),
        )
    )
    return VmRunCommands(
        load.argv, tuple(bhyve), load.files, tuple(devices.taps), tuple(devices.warnings)
    )
