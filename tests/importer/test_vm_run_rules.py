"""The vm-run model rule by rule: slots and buses, loaders, consoles, and where vm-run stops or
asks the host something. Expected values are worked out by hand from freebsd/vm-bhyve 89c21d0
(`run:N` lib/vm-run, `guest:N` lib/vm-guest, `std:N` lib/vm-switch-standard)."""

from __future__ import annotations

from typing import Any

import pytest
from vmbhyve_fixtures import template_conf

from reconciler.vmbhyve import (
    ConfFile,
    RunFacts,
    SystemConf,
    VmRunCommands,
    VmRunRefused,
    VmRunUnmodelled,
    parse_conf,
    parse_system_conf,
    vm_run_commands,
)

UUID = "11111111-2222-3333-4444-555555555555"
MAC = "58:9c:fc:00:00:aa"
BASE = f'loader="bhyveload"\ncpu=1\nmemory=512M\nuuid="{UUID}"\n'
DISK = 'disk0_type="virtio-blk"\ndisk0_name="disk0.img"\n'
NIC = f'network0_type="virtio-net"\nnetwork0_switch="public"\nnetwork0_mac="{MAC}"\n'
SYSTEM = parse_system_conf('switch_list="public"\ntype_public="standard"\n')
TAIL = ("-c", "1", "-m", "512M", "-AHPw", "-U", UUID, "-u")  # run:124-129 with the defaults


def run(
    conf: str | ConfFile, *, system: SystemConf = SYSTEM, name: str = "g", **facts: Any
) -> VmRunCommands:
    parsed = parse_conf(conf) if isinstance(conf, str) else conf
    return vm_run_commands(name, parsed, system, RunFacts(ds_path="/vm", vm_dir="/vm", **facts))


def bhyveload(*middle: str, name: str = "g") -> tuple[str, ...]:
    return (
        "bhyveload", "-c", f"/dev/nmdm-{name}.1A", *middle, "-m", "512M",
        "-e", f"smbios.system.uuid={UUID}", "-e", "autoboot_delay=3", "-e", f"bhyve_vm_name={name}",
    )  # fmt: skip


def test_the_end_of_bus_0_moves_devices_to_bus_1_and_adds_minus_y() -> None:
    boot = run(BASE + 'start_slot="29"\nvirt_random="yes"\n' + DISK + NIC, new_taps=("tap0",))
    assert boot.bhyve == (
        "bhyve", "-s", "0,hostbridge", "-s", "31,lpc",
        "-s", "0:29:0,virtio-blk,/vm/g/disk0.img",  # run:526; slot 30 after (run:561)
        "-s", f"0:30:0,virtio-net,tap0,mac={MAC}",  # slot 31 after (run:602) = _maxslots
        "-s", "1:0:0,virtio-rnd",  # run:605-607 moved to bus 1, slot 0; run:619
        *TAIL, "-Y",  # run:203-204
        "-l", "com1,/dev/nmdm-g.1A", "g",
    )  # fmt: skip


def test_nine_disks_without_uefi_fill_eight_functions_then_the_next_slot() -> None:
    disks = "".join(f'disk{i}_type="virtio-blk"\ndisk{i}_name="d{i}"\n' for i in range(9))
    devices = run(BASE + disks).bhyve[5:-11]
    assert devices == tuple(
        word
        for i in range(9)
        for word in ("-s", f"0:{4 + i // 8}:{i % 8},virtio-blk,/vm/g/d{i}")  # run:487-489
    )


@pytest.mark.parametrize("limit", ["1", "33", "x8", ""])
def test_an_ahci_limit_outside_2_to_32_puts_each_disk_on_its_own_device(limit: str) -> None:
    text = BASE + f'ahci_device_limit="{limit}"\n'
    text += 'disk0_type="ahci-hd"\ndisk0_name="a.img"\ndisk1_type="ahci-cd"\ndisk1_name="b.iso"\n'
    assert run(text).bhyve[5:9] == (
        "-s", "0:4:0,ahci-hd,/vm/g/a.img", "-s", "0:4:1,ahci-cd,/vm/g/b.iso",  # run:474, :526
    )  # fmt: skip


def test_a_full_ahci_controller_without_uefi_advances_the_function() -> None:
    text = (
        BASE
        + 'ahci_device_limit="2"\n'
        + "".join(f'disk{i}_type="ahci-hd"\ndisk{i}_name="d{i}"\n' for i in range(2))
    )
    text += 'disk2_type="virtio-blk"\ndisk2_name="d2"\n'
    assert run(text).bhyve[5:9] == (
        "-s", "0:4:0,ahci,hd:/vm/g/d0,hd:/vm/g/d1",  # run:515, then func 1 (run:537)
        "-s", "0:4:1,virtio-blk,/vm/g/d2",  # run:526
    )  # fmt: skip


def test_tmux_console_runs_in_foreground_com1_on_stdio_and_no_loader_console() -> None:
    # core::__start runs `_run -tf` for console=tmux; -f sets VM_OPT_FOREGROUND (vm-cmd).
    tmux = parse_system_conf('console="tmux"\n')
    boot = run(BASE + 'comports="com1 com2"\n' + DISK, system=tmux)
    assert boot.bhyve[-5:] == ("-l", "com1,stdio", "-l", "com2,/dev/nmdm-g.2A", "g")  # run:410
    assert boot.loader is not None
    assert boot.loader[:3] == ("bhyveload", "-m", "512M")  # guest:39 skipped


def test_empty_comports_leaves_the_loader_a_bare_minus_c() -> None:
    # comports="" is present, so no com1 default (run:44); _com stays empty and guest:39 makes
    # `-c ` which sh splits away: bhyveload reads `-m` as its console. vm-bhyve's own quirk.
    boot = run(BASE + 'comports=""\n' + DISK)
    assert boot.bhyve[-2:] == ("-u", "g")
    assert boot.loader is not None
    assert boot.loader[:3] == ("bhyveload", "-c", "-m")


def test_passthru_wires_memory_for_bhyve_and_the_loader() -> None:
    boot = run(BASE + DISK + 'passthru0="2/0/0"\npassthru1="5/0/0"\n')
    assert boot.loader == (*bhyveload("-S"), "-d", "/vm/g/disk0.img", "g")  # guest:40
    assert boot.bhyve == (
        "bhyve", "-s", "0,hostbridge", "-s", "31,lpc",
        "-s", "0:4:0,virtio-blk,/vm/g/disk0.img",
        "-s", "0:5:0,passthru,2/0/0",  # run:810
        "-s", "0:6:0,passthru,5/0/0",  # run:799-801: another host slot, another guest slot
        *TAIL, "-S",  # run:822
        "-l", "com1,/dev/nmdm-g.1A", "g",
    )  # fmt: skip


def test_bhyveload_custom_args_and_loader_path() -> None:
    text = BASE + DISK + 'bhyveload_args="-e machdep.hyperthreading_allowed=0"\n'
    text += 'bhyveload_loader="/boot/userboot.so"\nloader_timeout="10"\n'
    assert run(text).loader == (
        "bhyveload", "-c", "/dev/nmdm-g.1A", "-m", "512M",
        "-e", f"smbios.system.uuid={UUID}", "-e", "autoboot_delay=10", "-e", "bhyve_vm_name=g",
        "-e", "machdep.hyperthreading_allowed=0",  # guest:52
        "-l", "/boot/userboot.so",  # guest:56
        "-d", "/vm/g/disk0.img", "g",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("iso", "device"),
    [
        ("/vm/.iso/FreeBSD-14.3-RELEASE-amd64-disc1.iso", "ahci-cd,{},ro,bootindex=1"),  # run:176
        ("/vm/.iso/RESCUE.ISO", "ahci-cd,{},ro,bootindex=1"),  # grep -i
        ("/vm/.img/memstick.img", "ahci-hd,{},ro"),  # run:178
    ],
)
def test_bhyveload_install_boots_the_iso(iso: str, device: str) -> None:
    boot = run(BASE + DISK + 'install_slot="7"\n', iso=iso)
    assert boot.loader == (*bhyveload(), "-d", iso, "g")  # guest:59
    assert boot.bhyve[-5:] == ("-s", "7:0," + device.format(iso), "-l", "com1,/dev/nmdm-g.1A", "g")


def test_grub_install_writes_device_map_and_the_install_menu() -> None:
    iso = "/vm/.iso/alpine-virt-3.20.iso"
    boot = run(template_conf("legacy-alpine"), name="alpine", iso=iso, new_taps=("tap4",))
    assert boot.loader == (
        "/usr/local/sbin/grub-bhyve", "-c", "/dev/nmdm-alpine.1A",
        "-m", "/vm/alpine/device.map", "-M", "512M",
        "-r", "host", "-d", "/vm/alpine",  # guest:94: grub_install0 is set
        "alpine",
    )  # fmt: skip
    assert boot.files == (
        ("/vm/alpine/device.map", f"(cd0) {iso}\n(hd0) /vm/alpine/disk0.img\n"),  # guest:87-88
        (
            "/vm/alpine/grub.cfg",  # guest:174-186
            "timeout=3\n"
            "menuentry 'alpine (bhyve install)' {\n"
            "    root=cd0\n"
            "    linux /boot/vmlinuz-vanilla initrd=/boot/initramfs-vanilla "
            "alpine_dev=cdrom:iso9660 modules=loop,squashfs,sd-mod,usb-storage,sr-mod\n"
            "    initrd /boot/initramfs-vanilla\n"
            "}\n",
        ),
    )


def test_grub_run_menu_uses_the_partition_and_drops_boot() -> None:
    boot = run(
        'loader="grub"\ncpu=1\nmemory=512M\nuuid="u"\n' + DISK + 'grub_run_partition="gpt2"\n'
        'grub_run_dir="/ignored"\ngrub_run0="linux /vmlinuz root=/dev/vda2"\ngrub_run1="boot"\n'
    )
    assert boot.loader is not None
    assert boot.loader[-5:] == ("-r", "host", "-d", "/vm/g", "g")  # guest:115, no grub_run_dir
    assert boot.files[1] == (
        "/vm/g/grub.cfg",
        "timeout=3\nmenuentry 'g (bhyve run)' {\n    root=hd0,gpt2\n"
        "    linux /vmlinuz root=/dev/vda2\n}\n",  # guest:180 skips `boot`
    )


def test_grub_run_without_commands_reads_the_guests_own_config() -> None:
    text = 'loader="grub"\ncpu=1\nmemory=512M\nuuid="u"\n' + DISK
    text += 'disk1_name="data.img"\ngrub_run_file="grub.conf"\ngrub_run_no_partition="yes"\n'
    boot = run(text)
    # grub_run_no_partition never applies: guest:105 is `[ config::yesno ... ]`, a test(1)
    # syntax error, so the root stays hd0,1 (guest:99).
    assert boot.loader == (
        "/usr/local/sbin/grub-bhyve", "-c", "/dev/nmdm-g.1A", "-m", "/vm/g/device.map",
        "-M", "512M", "-r", "hd0,1", "-g", "grub.conf", "g",  # guest:117, :122
    )  # fmt: skip
    # disk1 has a name but no type: device.map lists it (guest:143-152), bhyve does not (run:482).
    assert boot.files == (("/vm/g/device.map", "(hd0) /vm/g/disk0.img\n(hd1) /vm/g/data.img\n"),)
    assert "data.img" not in " ".join(boot.bhyve)


def test_9p_root_boots_with_bhyveload_h() -> None:
    text = BASE + 'disk0_type="virtio-9p"\ndisk0_name="devroot=/vm/p9/root"\ndisk0_dev="9p"\n'
    boot = run(text)
    assert boot.bhyve[5:7] == ("-s", "0:4:0,virtio-9p,devroot=/vm/p9/root")  # run:853
    assert boot.loader == (*bhyveload(), "-h", "/vm/p9/root",  # guest:68
                           "-e", "vfs.root.mountfrom=p9fs:devroot", "g")  # fmt: skip


@pytest.mark.parametrize(
    ("loader", "firmware"),
    [
        ("uefi", "/usr/local/share/uefi-firmware/BHYVE_UEFI.fd"),  # run:307
        ("uefi-csm", "/usr/local/share/uefi-firmware/BHYVE_UEFI_CSM.fd"),  # run:301
        ("uefi-devel", "/usr/local/share/uefi-firmware/BHYVE_UEFI_CODE-devel.fd"),  # run:298
        ("uefi-custom", "/vm/.config/BHYVE_UEFI.fd"),  # run:304, VM_DS_PATH
        ("uefi-anything", "/usr/local/share/uefi-firmware/BHYVE_UEFI.fd"),  # ${_loader%-*}
    ],
)
def test_uefi_firmware_by_loader(loader: str, firmware: str) -> None:
    text = f'loader="{loader}"\ncpu=1\nmemory=1G\nuuid="u"\nnulliso_fix="yes"\n'
    boot = run(text)
    assert boot.loader is None
    assert boot.bhyve[boot.bhyve.index("-AHPw") + 1 : boot.bhyve.index("-U")] == (
        "-l",
        f"bootrom,{firmware}",
    )
    null_iso = ("-s", "3:0,ahci-cd,/vm/.config/null.iso")  # run:184: loader exactly "uefi"
    assert (boot.bhyve[-5:-3] == null_iso) is (loader == "uefi")


def test_hostbridge_none_utc_off_and_a_saved_state() -> None:
    boot = run(BASE + DISK + 'hostbridge="none"\nutctime=""\n', resume=True)
    assert boot.bhyve == (
        "bhyve", "-s", "31,lpc",  # run:438, `no*`
        "-s", "0:4:0,virtio-blk,/vm/g/disk0.img",
        "-c", "1", "-m", "512M", "-AHPw", "-U", UUID,  # utctime present but empty: no -u
        "-r", "/vm/g/g.save",  # run:222
        "-l", "com1,/dev/nmdm-g.1A", "g",
    )  # fmt: skip


def test_generated_uuid_and_mac_are_the_hosts_to_give() -> None:
    text = 'loader="bhyveload"\ncpu=1\nmemory=512M\n' + DISK
    text += 'network0_type="virtio-net"\nnetwork0_switch="public"\n'
    boot = run(text, new_uuid="gen-uuid", new_macs=("58:9c:fc:0f:ff:01",), new_taps=("tap9",))
    assert boot.bhyve[7:9] == ("-s", "0:5:0,virtio-net,tap9,mac=58:9c:fc:0f:ff:01")
    assert boot.bhyve[-6:-4] == ("-U", "gen-uuid")
    assert boot.loader is not None
    assert "smbios.system.uuid=gen-uuid" in boot.loader
    with pytest.raises(VmRunUnmodelled, match="uuidgen"):
        run(text, new_macs=("58:9c:fc:0f:ff:01",), new_taps=("tap9",))
    with pytest.raises(VmRunUnmodelled, match="network0 has no MAC"):
        run(text, new_uuid="gen-uuid", new_taps=("tap9",))


def test_a_nic_without_a_switch_gets_no_device() -> None:
    # switch::type returns before setting a type; switch::provision warns (vm-switch:444).
    boot = run(BASE + DISK + f'network0_type="virtio-net"\nnetwork0_mac="{MAC}"\n')
    assert "virtio-net" not in " ".join(boot.bhyve)
    assert boot.warnings == ("unable to configure interface 0",)
    assert boot.bhyve[7:9] == ("-c", "1")  # run:602 still moved on a slot


def test_a_space_in_a_path_splits_the_word_as_sh_does() -> None:
    boot = run(BASE + 'disk0_type="virtio-blk"\ndisk0_name="/vm/my disk.img"\ndisk0_dev="custom"\n')
    assert boot.bhyve[5:8] == ("-s", "0:4:0,virtio-blk,/vm/my", "disk.img")


@pytest.mark.parametrize(
    ("text", "facts", "error", "match"),
    [
        ('loader="bhyveload"\nmemory=1G\nuuid="u"\n', {}, VmRunRefused, "cpu count"),
        ('cpu=1\nmemory=1G\nuuid="u"\n', {}, VmRunRefused, "missing required"),
        ('loader="bhyveload"\ncpu=1\nuuid="u"\n', {}, VmRunRefused, "missing required"),
        (BASE, {}, VmRunRefused, "require a boot disk"),
        (BASE.replace("bhyveload", "grub2") + DISK, {}, VmRunRefused, "unsupported loader"),
        (BASE + 'disk0_type="virtio-9p"\ndisk0_name="/root"\ndisk0_dev="9p"\n', {},
         VmRunRefused, "devname=/path"),
        (BASE + 'disk0_type="virtio-blk"\ndisk0_name="iqn.x/0"\ndisk0_dev="iscsi"\n', {},
         VmRunUnmodelled, "iscsictl"),
        (BASE + DISK + NIC, {}, VmRunUnmodelled, "ifconfig tap create"),
        (BASE + DISK + NIC.replace("public", "ng"), {}, VmRunUnmodelled, "ngctl"),
        (BASE + DISK + 'bhyve_options="-p 0:[12]"\n', {}, VmRunUnmodelled, "shell pattern"),
        (BASE + DISK + 'start_slot="four"\n', {}, VmRunUnmodelled, "start_slot"),
        ('loader="uefi"\ncpu=1\nmemory=1G\nuuid="u"\ngraphics="yes"\n', {}, VmRunUnmodelled,
         "graphics_port"),
    ],
)  # fmt: skip
def test_where_vm_run_stops_or_the_model_needs_more_facts(
    text: str, facts: dict[str, Any], error: type[Exception], match: str
) -> None:
    system = parse_system_conf('switch_list="public ng"\ntype_ng="netgraph"\n')
    with pytest.raises(error, match=match):
        run(text, system=system, **facts)
