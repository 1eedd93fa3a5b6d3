"""What the log says about conf.d: which keys an edit changed, and a broken file fixed."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from reconciler.spec import Disk, GuestSpec, Lifecycle, Nic
from reconciler.specchanges import changed_keys, spec_events
from reconciler.specdir import ConfDir

BASE = GuestSpec(name="web", disks=(Disk(path="/vm/web.img"),), nics=(Nic(tap="tap0"),))


def test_changed_keys_are_named_as_the_file_writes_them() -> None:
    edited = replace(
        BASE,
        cpus=4,
        memory="2G",
        disks=(Disk(path="/vm/web.img", size=16 << 30),),
        nics=(Nic(tap="tap0", bridge="bridge0"),),
        loader_env=(("autoboot_delay", "3"),),
        lifecycle=Lifecycle(restart="always"),
    )
    assert changed_keys(BASE, edited) == [
        "cpus",
        "disk[0].size",
        "loader_env.autoboot_delay",
        "memory",
        "nic[0].bridge",
        "restart",
    ]


def test_a_key_set_to_its_default_is_no_change_and_a_removed_one_is() -> None:
    assert changed_keys(BASE, replace(BASE, cpus=1)) == []
    assert changed_keys(replace(BASE, utc_clock=True), BASE) == ["utc_clock"]
    two = replace(BASE, disks=(*BASE.disks, Disk(zvol="tank/x")))
    assert changed_keys(two, BASE) == ["disk[1].zvol"]


def write(conf: Path, stem: str, text: str) -> None:
    path = conf / f"{stem}.toml"
    path.write_text(text)
    path.chmod(0o644)
    # A new stat signature even within the file system's timestamp granularity.
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))


def test_scans_give_changed_keys_then_valid_again(tmp_path: Path) -> None:
    conf = tmp_path / "conf.d"
    conf.mkdir(mode=0o755)
    disk = '[[disk]]\npath = "/vm/a.img"\n'
    write(conf, "a", "cpus = 1\n" + disk)
    write(conf, "b", 'memory = "1G"\n' + disk.replace("a.img", "b.img"))
    confdir = ConfDir(conf)
    first = confdir.scan()
    assert spec_events(None, first) == []

    write(conf, "a", 'cpus = 2\nmemory = "2G"\n' + disk)
    write(conf, "b", "memory = \n")
    second = confdir.scan()
    assert spec_events(first, second) == [
        ("spec.changed", {"guest": "a", "file": str(conf / "a.toml"), "keys": ["cpus", "memory"]})
    ]

    write(conf, "b", 'memory = "1G"\n' + disk.replace("a.img", "b.img"))
    third = confdir.scan()
    assert spec_events(second, third) == [
        ("spec.valid_again", {"file": str(conf / "b.toml"), "guest": "b"})
    ]
    assert spec_events(third, confdir.scan()) == []
