"""conf.d reads the files a `[cloud_init]` names (bounded, trusted like spec files, checked like
inline text) into the spec, and reads them again when they change; `validate` warns of images
that are missing or not raw and of sizes smaller than their disk."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest
from cloud_keys import ED25519

from reconciler.cloudinit import seed_for
from reconciler.cloudinit_rules import MAX_CONTENT
from reconciler.specdir import ConfDir

USER_DATA = "/etc/cloud/web.yaml"
NETWORK = "/etc/cloud/net.yaml"
SPEC = f"""
[[disk]]
path = "/vm/web1/disk0.img"
source = "/vm/images/debian.raw"
size = "1M"

[cloud_init]
ssh_authorized_keys = ["{ED25519}"]
user_data = "{USER_DATA}"
network_config = "{NETWORK}"
"""


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "root/etc/cloud").mkdir(parents=True)
    return tmp_path / "root"


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    directory = tmp_path / "conf.d"
    directory.mkdir()
    spec = directory / "web1.toml"
    spec.write_text(SPEC)
    spec.chmod(0o644)
    return directory


def put(root: Path, path: str, text: str | bytes, mode: int = 0o644) -> Path:
    where = root / path.lstrip("/")
    if isinstance(text, str):
        where.write_text(text)
    else:
        where.write_bytes(text)
    where.chmod(mode)
    return where


def test_the_named_files_are_read_into_the_spec_and_the_seed(root: Path, conf: Path) -> None:
    put(root, USER_DATA, "#cloud-config\npackages: [nginx]\n")
    put(root, NETWORK, "version: 2\nethernets: {}\n")
    snapshot = ConfDir(conf, root=root, euid=1000).scan()
    assert snapshot.errors == ()
    ci = snapshot.guests["web1"].cloud_init
    assert ci is not None
    assert ci.user_data_content == "#cloud-config\npackages: [nginx]\n"
    assert ci.network_config_content == "version: 2\nethernets: {}\n"
    seed, problem = seed_for(snapshot.guests["web1"])
    assert problem is None and seed is not None
    assert b"packages:\n- nginx\n" in seed.user_data and ED25519.encode() in seed.user_data
    assert seed.network_config == b"version: 2\nethernets: {}\n"


BAD = [
    # (id, content or None for a missing file, mode, fragment)
    ("missing", None, 0o644, "cannot read it: No such file or directory"),
    ("bad-yaml", "#cloud-config\npackages: [nginx\n", 0o644, "is not valid YAML"),
    ("no-header", "packages: [nginx]\n", 0o644, 'the first line must be "#cloud-config"'),
    ("not-utf8", b"#cloud-config\n\xff\xfe\n", 0o644, "is not UTF-8 text"),
    ("too-large", "#!/bin/sh\n" + "#" * MAX_CONTENT, 0o644, f"is larger than {MAX_CONTENT}"),
    ("writable", "#cloud-config\n", 0o666, "lets group or others write it"),
]


@pytest.mark.parametrize(
    ("content", "mode", "fragment"), [c[1:] for c in BAD], ids=[c[0] for c in BAD]
)
def test_a_bad_user_data_file_is_an_error_naming_the_file_the_key_and_the_path(
    root: Path, conf: Path, content: str | bytes | None, mode: int, fragment: str
) -> None:
    put(root, NETWORK, "version: 2\n")
    if content is not None:
        put(root, USER_DATA, content, mode)
    snapshot = ConfDir(conf, root=root, euid=1000).scan()
    assert "web1" not in snapshot.guests
    [error] = snapshot.errors
    assert (error.file, error.key) == (str(conf / "web1.toml"), "cloud_init.user_data")
    assert error.message.startswith(f"{USER_DATA}: ") and fragment in error.message


def test_a_bad_network_config_file_names_its_key(root: Path, conf: Path) -> None:
    put(root, USER_DATA, "#cloud-config\n")
    put(root, NETWORK, "version: 3\n")
    [error] = ConfDir(conf, root=root, euid=1000).scan().errors
    assert error.key == "cloud_init.network_config"
    assert error.message == f"{NETWORK}: needs `version: 2` (or 1): the network config formats " \
        "cloud-init reads"  # fmt: skip


def test_an_edit_of_a_named_file_is_read_again_and_a_broken_one_keeps_the_last_good(
    root: Path, conf: Path
) -> None:
    user_data = put(root, USER_DATA, "#cloud-config\npackages: [nginx]\n")
    put(root, NETWORK, "version: 2\n")
    confdir = ConfDir(conf, root=root, euid=1000)
    first = confdir.scan()
    assert confdir.scan() is first and confdir.parses == 1  # nothing changed: nothing read

    user_data.write_text("#cloud-config\npackages: [nginx, curl]\n")
    os.utime(user_data, ns=(1, 1))
    second = confdir.scan()
    ci = second.guests["web1"].cloud_init
    assert ci is not None and ci.user_data_content == "#cloud-config\npackages: [nginx, curl]\n"
    assert second.generation == first.generation + 1

    user_data.write_text("not cloud-config\n")
    third = confdir.scan()
    assert [e.key for e in third.errors] == ["cloud_init.user_data"]
    assert third.guests["web1"] == second.guests["web1"]  # the last good spec stays


def test_validate_warns_of_images_and_sizes(tmp_path: Path) -> None:
    root = tmp_path / "root"
    conf = tmp_path / "conf.d"
    conf.mkdir()
    (root / "vm/images").mkdir(parents=True)
    (root / "vm/images/cloud.qcow2").write_bytes(b"QFI\xfb\x00\x00\x00\x03" + bytes(1024))
    with open(root / "vm/big.img", "wb") as f:
        f.truncate(4 << 20)
    disks = (
        '[[disk]]\npath = "/vm/a.img"\nsource = "/vm/images/none.raw"\n'
        '[[disk]]\npath = "/vm/b.img"\nsource = "/vm/images/cloud.qcow2"\n'
        '[[disk]]\npath = "/vm/big.img"\nsize = "1M"\n'
        '[[disk]]\npath = "/vm/c.img"\nsource = "/vm/big.img"\nsize = "2M"\n'
    )
    spec = conf / "g.toml"
    spec.write_text(disks)
    spec.chmod(0o644)

    daemon_view = ConfDir(conf, root=root, euid=1000).scan()
    assert daemon_view.problems == ()  # the daemon learns these from its pass instead

    snapshot = ConfDir(conf, root=root, euid=1000, check_disks=True).scan()
    assert snapshot.errors == ()
    warnings = {p.key: p.message for p in snapshot.problems if p.warning}
    assert warnings == {
        "disk[0].source": "/vm/images/none.raw does not exist (yet): the disk is copied from "
        "it once it does",
        "disk[1].source": warnings["disk[1].source"],
        "disk[2].size": "1M is smaller than /vm/big.img (4M); disks are never shrunk, so it "
        "stays as it is",
        "disk[3].source": "the disk's size 2M is smaller than the image /vm/big.img (4M): a "
        "disk can hold its whole image only",
    }
    assert (
        "qemu-img convert -O raw /vm/images/cloud.qcow2 /vm/images/cloud.raw"
        in (warnings["disk[1].source"])
    )


def test_a_copy_of_the_accepted_spec_stands_alone_and_boots_the_same(
    root: Path, conf: Path
) -> None:
    from reconciler.accepted import Accepted, parse, render

    put(root, USER_DATA, "#cloud-config\npackages: [nginx]\n")
    put(root, NETWORK, "version: 2\nethernets: {}\n")
    spec = ConfDir(conf, root=root, euid=1000).scan().guests["web1"]

    copy = parse("web1", render(Accepted(spec.source, spec))).spec

    assert copy.cloud_init is not None
    assert copy.cloud_init.user_data == "#cloud-config\npackages: [nginx]\n"  # inline now
    assert copy.boot_key == spec.boot_key  # an adopted boot is not restarted for it
    assert seed_for(copy)[0] == seed_for(spec)[0]
    assert spec.cloud_init is not None
    other = replace(spec.cloud_init, user_data_content="#cloud-config\npackages: [curl]\n")
    assert replace(spec, cloud_init=other).boot_key != spec.boot_key  # the text is what boots
