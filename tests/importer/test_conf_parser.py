"""The `.conf` reader: what vm-bhyve's config::load/config::get read from each fixture, and
every line sh/sysrc could read differently, reported with its line number."""

from __future__ import annotations

import pytest
from vmbhyve_fixtures import FIXTURES, TEMPLATES, guest_conf, template_conf

from reconciler.vmbhyve import ConfFile, is_yes, parse_conf

ONE_NIC = {"network0_type": "virtio-net", "network0_switch": "public"}

# Each template-shaped guest: its keys in file order with vm-bhyve's values (quotes removed,
# comments and commented-out keys dropped), then the uuid and MAC `vm create` appends.
TEMPLATE_SETTINGS: dict[str, dict[str, str]] = {
    "default": {"loader": "bhyveload", "cpu": "1", "memory": "256M", **ONE_NIC,
                "disk0_type": "virtio-blk", "disk0_name": "disk0.img"},
    "dragonfly": {"loader": "uefi", "graphics": "yes", "graphics_wait": "no", "cpu": "1",
                  "memory": "4G", **ONE_NIC, "disk0_type": "ahci-hd", "disk0_name": "disk0.img"},
    "freebsd-zvol": {"loader": "bhyveload", "cpu": "1", "memory": "256M", **ONE_NIC,
                     "disk0_type": "virtio-blk", "disk0_name": "disk0",
                     "disk0_dev": "sparse-zvol"},
    "legacy-alpine": {
        "loader": "grub", "cpu": "1", "memory": "512M", **ONE_NIC,
        "disk0_type": "virtio-blk", "disk0_name": "disk0.img",
        "grub_install0": "linux /boot/vmlinuz-vanilla initrd=/boot/initramfs-vanilla "
        "alpine_dev=cdrom:iso9660 modules=loop,squashfs,sd-mod,usb-storage,sr-mod",
        "grub_install1": "initrd /boot/initramfs-vanilla",
        "grub_run0": "linux /boot/vmlinuz-vanilla root=/dev/vda3 modules=ext4",
        "grub_run1": "initrd /boot/initramfs-vanilla",
    },
    "legacy-arch": {
        "loader": "grub", "cpu": "1", "memory": "512M", **ONE_NIC,
        "disk0_type": "virtio-blk", "disk0_name": "disk0.img",
        "grub_install0": "linux /arch/boot/x86_64/vmlinuz archisobasedir=arch "
        "archisolabel=ARCH_201611 ro",
        "grub_install1": "initrd /arch/boot/x86_64/archiso.img",
    },
    "legacy-debian": {"loader": "grub", "cpu": "1", "memory": "512M", **ONE_NIC,
                      "disk0_type": "ahci-hd", "disk0_name": "disk0.img",
                      "grub_run_partition": "1", "grub_run_dir": "/boot/grub"},
    "legacy-gentoo": {
        "loader": "grub", "cpu": "1", "memory": "512MB", **ONE_NIC,
        "disk0_type": "virtio-blk", "disk0_name": "disk0.img",
        "grub_install0": "linux /boot/gentoo root=/dev/ram0 init=/linuxrc dokeymap "
        "looptype=squashfs loop=/image.squashfs cdroot",
        "grub_install1": "initrd /boot/gentoo.igz",
        "grub_run0": "set root=(hd0,gpt2)",
        "grub_run1": "set timeout=1",
        "grub_run2": "configfile /grub/grub.cfg",
    },
    "legacy-ubuntu": {"loader": "grub", "cpu": "1", "memory": "1024M", **ONE_NIC,
                      "disk0_type": "virtio-blk", "disk0_name": "disk0.img"},
    "linux-grub-zvol": {"loader": "grub", "cpu": "1", "memory": "1G", **ONE_NIC,
                        "disk0_type": "virtio-blk", "disk0_name": "disk0",
                        "disk0_dev": "sparse-zvol"},
    "linux-grub": {"loader": "grub", "cpu": "1", "memory": "1G", **ONE_NIC,
                   "disk0_type": "virtio-blk", "disk0_name": "disk0.img"},
    "linux-zvol": {"loader": "uefi", "cpu": "1", "memory": "1G", **ONE_NIC,
                   "disk0_type": "virtio-blk", "disk0_name": "disk0",
                   "disk0_dev": "sparse-zvol"},
    "linux": {"loader": "uefi", "cpu": "1", "memory": "1G", **ONE_NIC,
              "disk0_type": "virtio-blk", "disk0_name": "disk0.img"},
    "netbsd": {"loader": "grub", "cpu": "1", "memory": "256M", **ONE_NIC,
               "disk0_type": "virtio-blk", "disk0_name": "disk0.img",
               "grub_install0": "knetbsd -h -r cd0a /netbsd",
               "grub_run0": "knetbsd -h -r dk0 /netbsd"},
    "openbsd": {"loader": "uefi", "cpu": "1", "memory": "512M", **ONE_NIC,
                "disk0_type": "virtio-blk", "disk0_name": "disk0.img", "bhyve_options": "-w",
                "graphics": "yes", "xhci_mouse": "yes", "graphics_res": "1600x900",
                "graphics_wait": "no"},
    "resflash": {"loader": "grub", "cpu": "1", "memory": "256M", **ONE_NIC,
                 "disk0_type": "virtio-blk", "disk0_name": "disk0.img",
                 "grub_run_partition": "openbsd4",
                 "grub_run0": "kopenbsd -h com0 -r sd0d /bsd", "bhyve_options": "-w"},
    "windows": {"loader": "uefi", "graphics": "yes", "xhci_mouse": "yes", "cpu": "2",
                "memory": "2G", "ahci_device_limit": "8", "network0_type": "e1000",
                "network0_switch": "public", "disk0_type": "ahci-hd",
                "disk0_name": "disk0.img", "utctime": "no"},
}  # fmt: skip


def line_of(conf: ConfFile, key: str) -> int | None:
    """The line of `key`'s setting, None when there is none."""
    found = conf.setting(key)
    return None if found is None else found.line


def _as_dict(conf: ConfFile) -> dict[str, str]:
    return {s.key: s.value for s in conf.settings}


def test_every_sample_template_has_a_fixture() -> None:
    # vm-bhyve's sample-templates/ holds these 16 templates (plus config.sample, whose every
    # key is in fixtures/vm/full).
    assert sorted(p.stem for p in TEMPLATES.glob("*.conf")) == sorted(TEMPLATE_SETTINGS)


@pytest.mark.parametrize("template", sorted(TEMPLATE_SETTINGS))
def test_template_shaped_guest_reads_cleanly(template: str) -> None:
    conf = template_conf(template)
    number = int(conf.text("uuid")[-2:], 16)

    assert conf.problems == ()
    assert _as_dict(conf) == {
        **TEMPLATE_SETTINGS[template],
        "uuid": f"a0000000-0000-4000-8000-0000000000{number:02x}",
        "network0_mac": f"58:9c:fc:00:00:{number:02x}",
    }


def test_line_numbers_count_comments_and_blank_lines() -> None:
    conf = template_conf("windows")
    # windows.conf: line 3 is a commented-out key, line 9 follows a blank line and a comment.
    assert conf.setting("xhci_mouse") is not None
    assert [(s.key, s.line) for s in conf.settings[:4]] == [
        ("loader", 1), ("graphics", 2), ("xhci_mouse", 4), ("cpu", 5),
    ]  # fmt: skip
    assert line_of(conf, "ahci_device_limit") == 9
    assert line_of(conf, "utctime") == 19


def test_every_config_sample_key_reads_cleanly() -> None:
    conf = guest_conf("full")
    assert conf.problems == ()
    assert len(conf.settings) == 80  # lines 2-81, one key each
    assert conf.get("zfs_dataset_opts") == ""  # present and empty, not missing
    assert conf.get("bhyve_options") == "-p 0:2"
    assert conf.get("tags") == "web prod"
    assert conf.get("passthru2") == "4/0/0=20:0"


def test_the_three_guests_read_cleanly() -> None:
    for name in ("fbsd", "deb", "win"):
        assert guest_conf(name).problems == (), name
    assert guest_conf("win").get("utctime") == "no"
    assert guest_conf("deb").get("network1_mac") == "58:9c:fc:04:05:06"


def test_hand_edited_file_reports_each_line_it_cannot_read() -> None:
    conf = parse_conf((FIXTURES / "bad" / "broken.conf").read_text())
    assert [(p.line, p.message) for p in conf.problems] == [
        (3, "spaces around `=`: sh reads a command, not an assignment"),
        (4, "indented assignment: sh reads it, vm-bhyve ignores lines that do not start with "
            "a lower-case letter"),
        (5, "key `Disk0_type` does not start with a lower-case letter: vm-bhyve ignores the "
            "line, sh reads it"),
        (6, "single quotes: sh removes them, vm-bhyve keeps them in the value"),
        (8, "`#` inside quotes: vm-bhyve cuts the value there, sh keeps it"),
        (9, "`$` inside double quotes: sh expands or unescapes it, vm-bhyve reads it literally"),
        (10, "';' in an unquoted value: sh may read it as syntax; write the value in double "
             'quotes ("...")'),
        (11, "unterminated double quote: sh continues the value on the next lines, vm-bhyve "
             "reads this line alone"),
        (12, "inside the double-quoted value opened on line 11: sh joins it to that value, "
             "vm-bhyve reads it on its own"),
        (15, "text after the value: sh would run it as a command, vm-bhyve keeps it"),
        (16, "not a `key=value` assignment or a comment"),
        (17, "a tab after the value: vm-bhyve keeps it (it strips spaces only)"),
        (18, "key `disk0_Name` has upper-case letters; vm-bhyve's keys are lower-case"),
        (19, "`cpu` is set again (first on line 13): vm-bhyve reads the first, sysrc and sh "
             "the last"),
    ]  # fmt: skip
    assert conf.problems[0].text == "cpu = 2"
    assert str(conf.problems[0]) == f"line 3: {conf.problems[0].message}"


def test_hand_edited_file_is_still_read_as_vm_bhyve_reads_it() -> None:
    # config::load keeps lines starting a-z, cuts at `#`, strips trailing spaces, deletes `"`;
    # config::get takes the first line whose text before `=` is the key.
    conf = parse_conf((FIXTURES / "bad" / "broken.conf").read_text())
    assert [(s.key, s.value, s.line) for s in conf.settings] == [
        ("loader", "bhyveload", 2),
        ("cpu ", " 2", 3),
        ("disk0_name", "'disk0.img'", 6),
        ("network0_type", "virtio-net", 7),
        ("network0_switch", "pub", 8),
        ("uuid", "$(uuidgen)", 9),
        ("graphics", "yes;", 10),
        ("disk0_opts", "ro", 11),
        ("cpu", "1", 13),
        ("memory", "2G", 14),
        ("comports", "com1 com2", 15),
        ("debug", "debug", 16),
        ("bhyve_options", "-p 0:1\t", 17),
        ("disk0_Name", "x", 18),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('memory="1G"\r\n', "carriage return (a DOS line ending): vm-bhyve keeps it in the value"),
        ("memory=1G\r\n", "carriage return (a DOS line ending): vm-bhyve keeps it in the value"),
        (
            'disk0_name="disk*.img"\n',
            "`*`, `?` or `[` in a value: vm-bhyve's reader expands it as a file pattern",
        ),
        (
            'bhyve_options="-s 5,virtio-rnd"x\n',
            "text after the value: sh would run it as a command, vm-bhyve keeps it",
        ),
        (
            'grub_run0="linux \\ root=/dev/vda1"\n',
            "a backslash inside double quotes: sh "
            "expands or unescapes it, vm-bhyve reads it literally",
        ),
        (
            'cpu="2"; memory=1G\n',
            "text after the value: sh would run it as a command, vm-bhyve keeps it",
        ),
        (
            "cpu=2;\n",
            "';' in an unquoted value: sh may read it as syntax; write the value in "
            'double quotes ("...")',
        ),
        ("export cpu=2\n", "not a `key=value` assignment or a comment"),
    ],
)
def test_lines_sh_and_vm_bhyve_read_differently(text: str, message: str) -> None:
    conf = parse_conf(text)
    assert [(p.line, p.message) for p in conf.problems] == [(1, message)]


def test_quote_continued_over_lines_hides_a_valid_looking_line() -> None:
    # sh reads `grub_run0` as three lines of text; vm-bhyve reads `cpu=4` as the cpu count.
    conf = parse_conf('grub_run0="linux /vmlinuz\ncpu=4\n"\nmemory=1G\n')
    assert [p.line for p in conf.problems] == [1, 2, 3]
    assert conf.get("cpu") == "4"
    assert conf.problems[-1].message.startswith("inside the double-quoted value opened on line 1")


def test_equal_duplicates_are_not_ambiguous() -> None:
    conf = parse_conf('cpu=2\nmemory=1G\ncpu="2"\n')
    assert conf.problems == ()
    assert line_of(conf, "cpu") == 1


def test_comments_after_values_and_empty_values() -> None:
    conf = parse_conf('cpu=2  # two\nmemory="1G" # one\nuuid=\ncomports=""\n#cpu=8\n')
    assert conf.problems == ()
    assert _as_dict(conf) == {"cpu": "2", "memory": "1G", "uuid": "", "comports": ""}


def test_present_but_empty_is_not_the_default() -> None:
    # config::get returns the empty value when the key is there: the default is for absence.
    conf = parse_conf('utctime=""\n')
    assert conf.get("utctime", "yes") == ""
    assert conf.get("hostbridge", "standard") == "standard"
    assert conf.yesno("utctime", "yes") is False
    assert conf.yesno("graphics") is False
    assert parse_conf("").yesno("utctime", "yes") is True


@pytest.mark.parametrize(
    ("value", "expected"),
    [("yes", True), ("YES", True), ("on", True), ("1", True), ("auto", True), ("anything", True),
     ("", False), ("no", False), ("No", False), ("FALSE", False), ("off", False), ("0", False)],
)  # fmt: skip
def test_yesno_follows_util_yesno(value: str, expected: bool) -> None:
    assert is_yes(value) is expected
