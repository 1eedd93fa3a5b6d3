"""The vm-run model on the three import targets and on a guest with every config.sample key.

Every expected argv below was worked out by hand from freebsd/vm-bhyve 89c21d0, not from the
model: each element's comment names the line that adds it (`run:N` is lib/vm-run, `guest:N`
lib/vm-guest, `std:N` lib/vm-switch-standard, `vale:N` lib/vm-switch-vale). vm-run builds
`_devices`, `_opts`, `_iso_dev` and `_comstring` as strings and runs
`bhyve ${_devices} $@ ${_iso_dev} ${_comstring} ${_name}` (run:243), `$@` being `_opts`
(run:212); the loader is `${_command} ${_args} ${_name}` (guest:134). The disk and NIC
cursor starts at bus 0, slot `start_slot` (default 4, run:48), function 0 (run:17).
"""

from __future__ import annotations

from vmbhyve_fixtures import guest_conf, system_conf

from reconciler.vmbhyve import RunFacts, vm_run_commands

FW = "/usr/local/share/uefi-firmware"


def test_a_bhyveload_freebsd_guest_on_a_file_disk() -> None:
    facts = RunFacts(ds_path="/vm", vm_dir="/vm", new_taps=("tap0",))
    run = vm_run_commands("fbsd", guest_conf("fbsd"), system_conf(), facts)
    uuid = "5c4e8a3e-61b5-11ef-9a0c-002590f1a2b3"

    assert run.loader == (
        "bhyveload",  # guest:47
        "-c", "/dev/nmdm-fbsd.1A",  # guest:39, _com from run:420 (comports default com1)
        "-m", "1G",  # guest:48, memory as written
        "-e", f"smbios.system.uuid={uuid}",  # guest:48
        "-e", "autoboot_delay=3",  # guest:48, loader_timeout default 3 (guest:43)
        "-e", "bhyve_vm_name=fbsd",  # guest:48
        "-d", "/vm/fbsd/disk0.img",  # guest:70, run:855 (disk0_dev default file)
        "fbsd",  # guest:134
    )  # fmt: skip
    assert run.bhyve == (
        "bhyve",
        "-s", "0,hostbridge",  # run:440, hostbridge default standard (run:42)
        "-s", "31,lpc",  # run:444
        "-s", "0:4:0,virtio-blk,/vm/fbsd/disk0.img",  # run:526 at 0:4:0; then func 1 (run:537)
        # run:560-562: after the disks, slot 5 function 0
        "-s", "0:5:0,virtio-net,tap0,mac=58:9c:fc:0a:1b:2c",  # std:408 tap, std:444-445
        "-c", "2",  # run:124
        "-m", "1G",  # run:124
        "-AHPw",  # run:96
        "-U", uuid,  # run:125
        "-u",  # run:128-129, utctime default yes
        "-l", "com1,/dev/nmdm-fbsd.1A",  # run:423
        "fbsd",  # run:247
    )  # fmt: skip
    assert run.files == ()
    assert run.taps == ("tap0",)
    assert run.warnings == ()


def test_b_grub_linux_guest_on_zvols_with_two_fixed_macs() -> None:
    facts = RunFacts(ds_path="/vm", vm_dir="/vm", zfs_dataset="zroot/vm", new_taps=("tap1", "tap2"))
    run = vm_run_commands("deb", guest_conf("deb"), system_conf(), facts)
    uuid = "0b7d2f9a-61b6-11ef-9a0c-002590f1a2b3"

    assert run.loader == (
        "/usr/local/sbin/grub-bhyve",  # guest:74, `which grub-bhyve`
        "-c", "/dev/nmdm-deb.1A",  # guest:39
        "-m", "/vm/deb/device.map",  # guest:83
        "-M", "2G",  # guest:83
        "-r", "hd0,1",  # guest:117; grub_run_partition="1" makes hd0,1 (guest:109)
        "-d", "/boot/grub",  # guest:120, grub_run_dir
        "deb",  # guest:134
    )  # fmt: skip
    assert run.files == (
        (
            "/vm/deb/device.map",
            # guest:100 writes (hd0) disk0, guest::__map_all_disks (guest:148) adds disk1;
            # zvol and sparse-zvol both map to /dev/zvol/DATASET/NAME/DISK (run:852).
            "(hd0) /dev/zvol/zroot/vm/deb/disk0\n(hd1) /dev/zvol/zroot/vm/deb/disk1\n",
        ),
    )
    assert run.bhyve == (
        "bhyve",
        "-s", "0,hostbridge",  # run:440
        "-s", "31,lpc",  # run:444
        "-s", "0:4:0,virtio-blk,/dev/zvol/zroot/vm/deb/disk0",  # run:526, then func 1 (run:537)
        "-s", "0:4:1,virtio-blk,/dev/zvol/zroot/vm/deb/disk1",  # run:526; no UEFI: one slot
        # run:560-562: slot 5, function 0 for the NICs
        "-s", "0:5:0,virtio-net,tap1,mac=58:9c:fc:01:02:03",  # std:444-445, func 1
        "-s", "0:5:1,virtio-net,tap2,mac=58:9c:fc:04:05:06",  # std:444-445
        "-c", "2", "-m", "2G",  # run:124
        "-AHPw",  # run:96
        "-U", uuid,  # run:125
        "-u",  # run:129
        "-l", "com1,/dev/nmdm-deb.1A",  # run:423
        "deb",  # run:247
    )  # fmt: skip
    assert run.taps == ("tap1", "tap2")


def test_c_uefi_windows_guest_installing_from_an_iso() -> None:
    iso = "/vm/.iso/Win11_24H2.iso"
    facts = RunFacts(ds_path="/vm", vm_dir="/vm", new_taps=("tap3",), iso=iso)
    run = vm_run_commands("win", guest_conf("win"), system_conf(), facts)

    assert run.loader is None  # run:191: no guest::load for UEFI
    assert run.files == ()
    assert run.bhyve == (
        "bhyve",
        "-s", "0,hostbridge",  # run:440
        "-s", "31,lpc",  # run:444
        # ahci_device_limit=8: both ahci-hd disks wait in _ahci (run:509) and the leftover
        # controller is added after the loop at slot:func with no bus (run:554); UEFI then
        # moves to slot 5 (run:555).
        "-s", "4:0,ahci,hd:/vm/win/disk0.img,hd:/vm/win/data.img",
        "-s", "0:5:0,e1000,tap3,mac=58:9c:fc:0d:0e:0f",  # std:444-445; slot 6 after (run:602)
        # run:666-670: graphics_listen default 0.0.0.0, port 5901, 1280x720; graphics_wait
        # default auto stays auto while installing (run:650), and auto is yes: `,wait`.
        "-s", "0:6:0,fbuf,tcp=0.0.0.0:5901,w=1280,h=720,wait",  # run:676
        "-s", "0:7:0,xhci,tablet",  # run:707
        "-c", "2", "-m", "4G",  # run:124
        "-AHPw",  # run:96
        # run:333, with the default firmware (run:307) and uefi_vars=yes (run:330)
        "-l", f"bootrom,{FW}/BHYVE_UEFI.fd,/vm/win/uefi-vars.fd",
        "-U", "8e3f4b1c-61b6-11ef-9a0c-002590f1a2b3",  # run:125
        # no -u: utctime="no" (run:128)
        "-s", f"3:0,ahci-cd,{iso},ro,bootindex=1",  # run:176, install_slot default 3
        "-l", "com1,/dev/nmdm-win.1A",  # run:423
        "win",  # run:247
    )  # fmt: skip


def test_c_after_the_install_without_the_iso() -> None:
    # `vm start win`: no _iso_dev (run:174), graphics_wait auto becomes no (run:650).
    facts = RunFacts(ds_path="/vm", vm_dir="/vm", new_taps=("tap3",))
    run = vm_run_commands("win", guest_conf("win"), system_conf(), facts)

    assert run.bhyve == (
        "bhyve",
        "-s", "0,hostbridge", "-s", "31,lpc",
        "-s", "4:0,ahci,hd:/vm/win/disk0.img,hd:/vm/win/data.img",
        "-s", "0:5:0,e1000,tap3,mac=58:9c:fc:0d:0e:0f",
        "-s", "0:6:0,fbuf,tcp=0.0.0.0:5901,w=1280,h=720",
        "-s", "0:7:0,xhci,tablet",
        "-c", "2", "-m", "4G", "-AHPw",
        "-l", f"bootrom,{FW}/BHYVE_UEFI.fd,/vm/win/uefi-vars.fd",
        "-U", "8e3f4b1c-61b6-11ef-9a0c-002590f1a2b3",
        "-l", "com1,/dev/nmdm-win.1A",
        "win",
    )  # fmt: skip


def test_every_config_sample_key_on_one_uefi_guest() -> None:
    facts = RunFacts(ds_path="/vm", vm_dir="/vm", zfs_dataset="zroot/vm")
    run = vm_run_commands("full", guest_conf("full"), system_conf(), facts)

    assert run.loader is None
    assert run.bhyve == (
        "bhyve",
        "-s", "0,amd_hostbridge",  # run:439
        "-s", "31,lpc,fwcfg=qemu",  # run:444
        # start_slot=5; UEFI: each added disk moves to the next slot (run:534)
        "-s", "0:5:0,nvme,/dev/zvol/zroot/vm/full/os,sectorsize=4096",  # run:526-527, run:852
        # ahci_device_limit=2: disk1 (custom, run:853) and disk2 fill a controller (run:515)
        "-s", "0:6:0,ahci,hd:/dev/ada1,cd:/vm/full/tools.iso,ro",
        "-s", "7:0,ahci,hd:/vm/full/scratch.img",  # run:554: disk3, the leftover, no bus
        # NICs at slot 8 (run:555), functions 0-2
        "-s", "0:8:0,virtio-net,web1,mac=58:9c:fc:10:20:30",  # std:406 network0_name
        "-s", "0:8:1,e1000,tap100,mac=58:9c:fc:10:20:31",  # std:404 network1_device
        # vale:78-83: `md5 -qs storage` = ddecebde..., `md5 -qs 58:9c:fc:10:20:32` = 024c39eb...
        "-s", "0:8:2,virtio-net,valeddece:024c3,mac=58:9c:fc:10:20:32",  # vale:102-103
        "-s", "0:9:0,virtio-rnd",  # run:619, slot 9 after the NICs (run:602)
        # run:810: 3/0/0 and 3/0/1 share host slot 3, so guest slot 10 functions 0 and 1
        "-s", "0:10:0,passthru,3/0/0,rom=/vm/full/gpu.rom",
        "-s", "0:10:1,passthru,3/0/1",
        "-s", "0:20:0,passthru,4/0/0",  # run:792: `=20:0` fixes the guest slot
        # run:819: slot 11 after passthru; graphics_wait=yes (run:670)
        "-s", "0:11:0,fbuf,tcp=127.0.0.1:5910,w=1920,h=1080,vga=off,password=s3cret,wait",
        "-s", "0:12:0,xhci,tablet",  # run:707
        "-s", "0:13:0,hda,play=/dev/dsp0,rec=/dev/dsp1",  # run:723-726
        # run:756: a named port, then `yes` numbered by its index (run:753)
        "-s", "0:14:0,virtio-console,org.freenas.bhyve-agent=/vm/full/vtcon.org.freenas"
        ".bhyve-agent,1=/vm/full/vtcon.1",
        "-c", "4,sockets=1,cores=2,threads=2",  # run:124, vm::__cpu (run:1098-1100)
        "-m", "8G",
        "-AHPww",  # run:96, run:99 ignore_msr (ignore_bad_msr is never read)
        "-l", f"bootrom,{FW}/BHYVE_UEFI.fd,/vm/full/uefi-vars.fd",  # run:333
        "-p", "0:2",  # run:107, bhyve_options
        "-S",  # run:120, wired_memory
        "-U", "c0ffee00-61b7-11ef-9a0c-002590f1a2b3",  # run:125
        "-u",  # run:129
        "-S",  # run:822: passthru appends its own
        "-s", "4:0,ahci-cd,/vm/.config/null.iso",  # run:185: loader uefi, nulliso_fix=yes
        "-l", "com1,/dev/nmdm-full.1A",  # run:423
        "-l", "com2,/dev/nmdm-full.2A",  # run:423, second port numbered 2 (run:417)
        "full",
    )  # fmt: skip
    assert run.taps == ("web1",)  # the named tap is created; tap100 and the vale port are not
