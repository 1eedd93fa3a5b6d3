"""`[[disk]] source` and `[cloud_init]` in a guest file: read into the model, and every bad
value an error naming the file and the key."""

from __future__ import annotations

from dataclasses import replace

import pytest
from cloud_keys import ED25519

from reconciler.bhyve import SEED_CD_SLOT, pci_slots
from reconciler.errors import SpecError
from reconciler.guestfile import parse_guest_text
from reconciler.spec import CloudInit, Disk, GuestSpec, StaticNetwork

FILE = "/usr/local/etc/bhyve-reconciler/conf.d/web1.toml"
KEYS = f'[cloud_init]\nssh_authorized_keys = ["{ED25519}"]\n'

WEB1 = f"""
name = "web1"
loader = "uefi"
cpus = 2
memory = "2G"

[[disk]]
path = "/vm/web1/disk0.img"
source = "/vm/images/debian-12-genericcloud-amd64.raw"
size = "20G"

[[disk]]
zvol = "zroot/vm/web1-data"
source = "zroot/images/data@v1"

[[nic]]
bridge = "bridge0"

[cloud_init]
ssh_authorized_keys = ["{ED25519}"]
user_data = "/usr/local/etc/bhyve-reconciler/cloud/web.yaml"
network = {{ address = "192.0.2.21/24", gateway = "192.0.2.1", nameservers = ["192.0.2.1"] }}
"""


def parsed(text: str, stem: str = "web1") -> GuestSpec:
    spec, errors = parse_guest_text(text, file=FILE, stem=stem)
    assert errors == []
    assert spec is not None
    return spec


def errors_of(text: str, stem: str = "web1") -> list[SpecError]:
    spec, errors = parse_guest_text(text, file=FILE, stem=stem)
    assert spec is None
    assert errors and all(e.file == FILE for e in errors)
    return errors


def message_at(text: str, key: str, stem: str = "web1") -> str:
    found = [e.message for e in errors_of(text, stem) if e.key == key]
    assert found, f"no error at {key!r}: {[(e.key, e.message) for e in errors_of(text, stem)]}"
    return found[0]


def test_the_issue_example_is_read_into_the_model() -> None:
    spec = parsed(WEB1)
    assert spec.disks == (
        Disk(
            path="/vm/web1/disk0.img",
            source="/vm/images/debian-12-genericcloud-amd64.raw",
            size=20 << 30,
        ),
        Disk(zvol="zroot/vm/web1-data", source="zroot/images/data@v1"),
    )
    assert spec.cloud_init == CloudInit(
        ssh_authorized_keys=(ED25519,),
        user_data="/usr/local/etc/bhyve-reconciler/cloud/web.yaml",
        network=StaticNetwork("192.0.2.21/24", "192.0.2.1", ("192.0.2.1",)),
    )


def test_a_source_edit_does_not_change_what_boots() -> None:
    spec = parsed(WEB1)
    other = replace(spec, disks=(replace(spec.disks[0], source="/vm/images/other.raw"),))
    assert replace(spec, disks=other.disks[:1] + spec.disks[1:]).boot_key == spec.boot_key
    assert replace(spec, disks=(replace(spec.disks[0], size=30 << 30),)).boot_key != (spec.boot_key)
    assert replace(spec, cloud_init=None).boot_key != spec.boot_key


DISK = '[[disk]]\npath = "/vm/web1/disk0.img"\n'
ZVOL = '[[disk]]\nzvol = "zroot/vm/web1"\n'

SOURCE_CASES = [
    # (id, TOML text, fragment of the message at disk[0].source)
    ("relative", DISK + 'source = "images/debian.raw"\n', "must be an absolute path"),
    ("snapshot-on-file", DISK + 'source = "zroot/images/debian@v1"\n',
     "looks like a ZFS snapshot: a snapshot is cloned into a `zvol` disk"),
    ("comma", DISK + 'source = "/vm/images/a,b.raw"\n', "must not contain a comma"),
    ("not-normalised", DISK + 'source = "/vm/images/../x.raw"\n', "must be normalised"),
    ("itself", DISK + 'source = "/vm/web1/disk0.img"\n', "is the disk itself"),
    ("integer", DISK + "source = 3\n", "expected a string, got an integer"),
    ("file-on-zvol", ZVOL + 'source = "/vm/images/debian.raw"\n',
     'a zvol disk is cloned from a snapshot: expected "pool/dataset@snapshot", got '
     '"/vm/images/debian.raw": an image file is copied into a `path` disk'),
    ("dataset-on-zvol", ZVOL + 'source = "zroot/images/debian"\n', "pool/dataset@snapshot"),
    ("bad-dataset", ZVOL + 'source = "zroot/im ages@v1"\n', "must be made of"),
    ("no-pool", ZVOL + 'source = "zroot@v1"\n', 'like "zroot/vm/disk0"'),
    ("empty-snapshot", ZVOL + 'source = "zroot/images/debian@"\n', "the snapshot name after"),
    ("bad-snapshot", ZVOL + 'source = "zroot/images/debian@a b"\n', "the snapshot name after"),
    ("other-pool", ZVOL + 'source = "tank/images/debian@v1"\n',
     "is in pool tank and the disk in pool zroot: a clone lives in its snapshot's pool"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "fragment"), [c[1:] for c in SOURCE_CASES], ids=[c[0] for c in SOURCE_CASES]
)
def test_a_bad_source_names_the_file_and_the_key(text: str, fragment: str) -> None:
    assert fragment in message_at(text, "disk[0].source")


CLOUD_CASES = [
    # (id, [cloud_init] body, key, fragment)
    ("no-login", '[cloud_init]\nhostname = "web1"\n', "cloud_init", "nobody can log in"),
    ("bad-key", '[cloud_init]\nssh_authorized_keys = ["ssh-ed25519 AAAA"]\n',
     "cloud_init.ssh_authorized_keys[0]", "was the key cut"),
    ("bad-yaml", KEYS + 'user_data = "#cloud-config\\npackages: [nginx\\n"\n',
     "cloud_init.user_data", "is not valid YAML"),
    ("no-header", KEYS + 'user_data = "packages: [nginx]\\n"\n', "cloud_init.user_data",
     'the first line must be "#cloud-config"'),
    ("hostname", KEYS + 'hostname = "web_1"\n', "cloud_init.hostname", "not a valid host name"),
    ("address", KEYS + '[cloud_init.network]\naddress = "192.0.2.21"\n',
     "cloud_init.network.address", "with its prefix"),
    ("both-networks", KEYS + 'network_config = "/etc/net.yaml"\n'
     '[cloud_init.network]\naddress = "192.0.2.21/24"\n', "cloud_init.network_config",
     "give either `network` (one static address) or `network_config`, not both"),
    ("unknown", KEYS + "colour = 1\n", "cloud_init.colour", "unknown key"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("body", "key", "fragment"), [c[1:] for c in CLOUD_CASES], ids=[c[0] for c in CLOUD_CASES]
)
def test_a_bad_cloud_init_names_the_file_and_the_key(body: str, key: str, fragment: str) -> None:
    assert fragment in message_at(DISK + body, key)


def test_cloud_init_must_be_a_table() -> None:
    message = message_at('cloud_init = "yes"\n' + DISK, "cloud_init")
    assert 'expected a table ([cloud_init]), got a string ("yes")' in message


def test_the_guest_name_must_be_a_host_name_unless_hostname_is_set() -> None:
    message = message_at(DISK + KEYS, "cloud_init.hostname", stem="web_1")
    assert '"web_1" is not a valid host name' in message and "set `hostname`" in message
    spec = parsed(DISK + KEYS + 'hostname = "web-1"\n', stem="web_1")
    assert spec.cloud_init is not None and spec.cloud_init.hostname_for("web_1") == "web-1"


def test_the_seed_cd_takes_the_last_device_slot() -> None:
    spec = parsed(DISK + KEYS)
    assert (SEED_CD_SLOT, "seed-cd") in pci_slots(spec)
    assert SEED_CD_SLOT == 28
    twenty_six = "".join(f'[[disk]]\npath = "/vm/d{i}.img"\n' for i in range(26))
    assert parsed(twenty_six + KEYS).cloud_init is not None
    twenty_seven = twenty_six + '[[disk]]\npath = "/vm/d26.img"\n'
    assert parsed(twenty_seven).cloud_init is None  # 27 devices fit without a seed
    message = message_at(twenty_seven + KEYS, "disk")
    assert "28 devices (disks, NICs, passthru and the cloud-init seed CD)" in message
