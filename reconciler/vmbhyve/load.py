"""The loader vm-bhyve runs before bhyve for a non-UEFI guest: lib/vm-guest `guest::load`.

Pure: a `LoadInput` in, the loader argv and the files vm-bhyve writes for it (grub-bhyve's
device.map and grub.cfg, with their contents) out. Follows freebsd/vm-bhyve 89c21d0.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.vmbhyve.conf import ConfFile
from reconciler.vmbhyve.facts import VmRunRefused, VmRunUnmodelled
from reconciler.vmbhyve.words import split_words


@dataclass(frozen=True)
class LoadInput:
    """The vm::run variables guest::load reads (it runs inside vm::run's scope)."""

    name: str
    conf: ConfFile
    loader: str  # _loader
    memory: str  # _memory, as written
    uuid: str  # _uuid, after generation
    com: str  # _com: the A side of the first nmdm port, "" when there is none
    wired: bool  # _wiredmem: wired_memory=yes or a passthru device
    bootdisk: str  # _bootdisk: disk0's full path, "" without disk0_name
    bootdisk_dev: str  # _bootdisk_dev: disk0_dev, default "file"
    ds_path: str
    iso: str | None
    foreground: bool
    grub_bhyve: str
    disk_paths: tuple[str, ...]  # the path of disk1, disk2, ... for device.map (hd1, hd2, ...)


@dataclass(frozen=True)
class LoadCommands:
    argv: tuple[str, ...]
    files: tuple[tuple[str, str], ...]  # (path, content) written before the loader runs


def _bhyveload_args(load: LoadInput, timeout: str) -> str:
    # vm-guest:48: the three -e variables always follow -m.
    args = (
        f" -m {load.memory} -e smbios.system.uuid={load.uuid} -e autoboot_delay={timeout}"
        f" -e bhyve_vm_name={load.name}"
    )
    custom = load.conf.text("bhyveload_args")
    if custom:
        args += f" {custom}"  # vm-guest:52, verbatim and word-split
    bsd_loader = load.conf.text("bhyveload_loader")
    if bsd_loader:
        args += f" -l {bsd_loader}"  # vm-guest:56
    if load.iso:
        return args + f" -d {load.iso}"  # vm-guest:59
    if load.bootdisk_dev == "9p":
        # vm-guest:60-68: disk0_name is `dev=/host/path`; awk -F = prints fields 1 and 2.
        fields = load.bootdisk.split("=")
        device, path = fields[0], (fields[1] if len(fields) > 1 else "")
        if not device or not path:
            raise VmRunRefused("virtio-9p boot disk requires format devname=/path/to/root")
        return args + f" -h {path} -e vfs.root.mountfrom=p9fs:{device}"
    return args + f" -d {load.bootdisk}"  # vm-guest:70


def _grub_cfg(load: LoadInput, kind: str, root: str, timeout: str) -> str | None:
    """guest::__write_config: grub_KIND0.. as a menu entry, or None without grub_KIND0."""
    commands: list[str] = []
    while True:
        command = load.conf.text(f"grub_{kind}{len(commands)}")
        if not command:
            break
        commands.append(command)
    if not commands:
        return None
    lines = [f"timeout={timeout}", f"menuentry '{load.name} (bhyve {kind})' {{", f"    root={root}"]
    lines += [f"    {command}" for command in commands if command != "boot"]
    lines.append("}")
    return "".join(f"{line}\n" for line in lines)  # util::log_and_write echoes each line


def _grub(load: LoadInput, timeout: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    guest_dir = f"{load.ds_path}/{load.name}"
    args = f" -m {guest_dir}/device.map -M {load.memory}"  # vm-guest:83
    extra = "".join(f"(hd{i}) {path}\n" for i, path in enumerate(load.disk_paths, start=1))
    if load.iso:
        kind, root = "install", "cd0"  # vm-guest:86-89
        device_map = f"(cd0) {load.iso}\n(hd0) {load.bootdisk}\n{extra}"
    else:
        # vm-guest:99-110. The `grub_run_no_partition` test there is `[ config::yesno ... ]`,
        # a two-word test(1) that is a syntax error (status 2), so it never applies.
        kind, root = "run", "hd0,1"
        device_map = f"(hd0) {load.bootdisk}\n{extra}"
        partition = load.conf.text("grub_run_partition")
        if partition:
            root = f"hd0,{partition}"
    files = [(f"{guest_dir}/device.map", device_map)]
    config = _grub_cfg(load, kind, root, timeout)
    if config is not None:
        files.append((f"{guest_dir}/grub.cfg", config))
        return args + f" -r host -d {guest_dir}", tuple(files)  # vm-guest:94, :115
    args += f" -r {root}"
    if kind == "run":
        directory = load.conf.text("grub_run_dir")
        if directory:
            args += f" -d {directory}"  # vm-guest:120
        file = load.conf.text("grub_run_file")
        if file:
            args += f" -g {file}"  # vm-guest:122
    return args, tuple(files)


def loader_commands(load: LoadInput) -> LoadCommands:
    """`${_command} ${_args} ${_name}` (vm-guest:134), word-split as sh splits it."""
    if not load.bootdisk:
        raise VmRunRefused("non-uefi loaders require a boot disk device")  # vm-guest:33
    args = "" if load.foreground else f"-c {load.com}"  # vm-guest:39
    if load.wired:
        args += (" " if args else "") + "-S"  # vm-guest:40
    timeout = load.conf.text("loader_timeout", "3")  # vm-guest:43
    files: tuple[tuple[str, str], ...] = ()
    if load.loader == "bhyveload":
        command = "bhyveload"
        args += _bhyveload_args(load, timeout)
    elif load.loader == "grub":
        command = load.grub_bhyve
        more, files = _grub(load, timeout)
        args += more
    else:
        raise VmRunRefused(f"unsupported loader - '{load.loader}'")  # vm-guest:127
    words = split_words(f"{command} {args} {load.name}")
    if words is None:
        raise VmRunUnmodelled("the loader command line holds a shell pattern (`*`, `?`, `[`)")
    return LoadCommands(argv=tuple(words), files=files)
