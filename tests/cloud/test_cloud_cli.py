"""Cloud images from one file, through `validate`, `plan`, `apply` and `commands`, with the real
FreeBSD driver on the simulated host: disks copied from images (holes kept, grown, never copied
again), qcow2 refused, zvols cloned, disks grown and never shrunk, and the NoCloud seed read
back from the ISO makefs wrote."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pycdlib
import yaml
from cloud_keys import ECDSA, ED25519
from e2e_helpers import CliRig

KiB, MiB = 1 << 10, 1 << 20
IMAGE = "/vm/images/debian-12-genericcloud-amd64.raw"
DISK = "/vm/web1/disk0.img"
# The image: 64 MiB, data at both ends and in the middle, holes between.
DATA = [(0, 1 * MiB + 3 * KiB), (20 * MiB, 256 * KiB), (64 * MiB - 128 * KiB, 128 * KiB)]


def web1(*, state: str = "stopped", size: str = "256M", extra: str = "") -> str:
    return f"""\
name = "web1"
loader = "uefi"
state = "{state}"

[[disk]]
path = "{DISK}"
source = "{IMAGE}"
size = "{size}"
{extra}"""


def write_image(rig: CliRig, path: str = IMAGE, size: int = 64 * MiB) -> bytes:
    where = rig.sim.path(path)
    where.parent.mkdir(parents=True, exist_ok=True)
    with open(where, "wb") as f:
        f.truncate(size)
        for offset, length in DATA:
            f.seek(offset)
            f.write(os.urandom(length))
    return where.read_bytes()


def read_head(path: Path, size: int) -> bytes:
    """The first `size` bytes, without reading the rest of a disk of hundreds of MiB."""
    with open(path, "rb") as f:
        return f.read(size)


def allocated(path: Path) -> int:
    return path.stat().st_blocks * 512


def test_a_sparse_image_is_copied_with_its_holes_grown_and_never_copied_again(rig: CliRig) -> None:
    content = write_image(rig)
    image = rig.sim.path(IMAGE)
    rig.write_spec("web1", web1())

    plan = rig.cli("plan")
    assert f"+ copy image {IMAGE} to {DISK} (256M, sparse) for guest web1" in plan.stdout
    first = rig.cli("apply")
    assert first.returncode == 0, first.stdout + first.stderr

    disk = rig.sim.path(DISK)
    data = disk.read_bytes()
    assert len(data) == 256 * MiB  # grown to `size`
    # Compared in place: slices of a quarter GiB would copy it twice more.
    assert data.startswith(content) and data.count(0, len(content)) == 192 * MiB
    # About the same allocated blocks as the image: the holes stayed holes, the growth too.
    assert abs(allocated(disk) - allocated(image)) <= 256 * KiB
    assert allocated(disk) < 4 * MiB
    assert rig.ledger().disks == {DISK: "web1"}
    before = disk.stat()

    for _ in range(2):
        again = rig.cli("apply")
        assert again.returncode == 0 and "copy image" not in again.stdout, again.stdout
    plan = rig.cli("plan")
    assert (plan.returncode, plan.stdout) == (0, "converged: nothing to do\n"), plan.stderr
    after = disk.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert [p.name for p in disk.parent.iterdir()] == ["disk0.img"]  # no temporary left


def test_a_qcow2_image_is_refused_naming_qemu_img_and_the_guest_waits(rig: CliRig) -> None:
    qcow2 = rig.sim.path("/vm/images/debian-12.qcow2")
    qcow2.parent.mkdir(parents=True)
    qcow2.write_bytes(b"QFI\xfb\x00\x00\x00\x03" + bytes(4096))
    rig.write_spec("web1", web1(state="running").replace(IMAGE, "/vm/images/debian-12.qcow2"))

    plan = rig.cli("plan")
    assert "copy image" not in plan.stdout and "start guest web1" not in plan.stdout
    assert (
        "guest web1 waits: /vm/images/debian-12.qcow2 is a qcow2 image (version 3), and bhyve "
        "boots raw images only: convert it with `qemu-img convert -O raw "
        "/vm/images/debian-12.qcow2 /vm/images/debian-12.raw` and name the raw file instead"
    ) in plan.stderr
    validate = rig.cli("validate")
    assert validate.returncode == 0  # the file is right; the image is the host's state
    assert "disk[0].source: warning: /vm/images/debian-12.qcow2 is a qcow2 image" in (
        validate.stdout
    )
    apply = rig.cli("apply")
    assert not rig.sim.path(DISK).exists()
    assert "qemu-img convert" in apply.stderr


def test_a_missing_image_is_shown_and_the_disk_made_once_it_appears(rig: CliRig) -> None:
    rig.write_spec("web1", web1(state="running"))
    plan = rig.cli("plan")
    assert f"guest web1 waits: the image {IMAGE} does not exist (yet)" in plan.stderr
    assert (plan.returncode, plan.stdout.splitlines()[-1]) == (2, "= web1 waits (see above)")
    assert "start guest web1" not in plan.stdout
    rig.cli("apply")
    plan = rig.cli("plan")  # the host is ready, the guest still waits: not "converged"
    assert (plan.returncode, plan.stdout) == (2, "= web1 waits (see above)\n")
    assert not rig.sim.path(DISK).exists()
    write_image(rig)
    rig.cli("apply")
    assert rig.sim.path(DISK).stat().st_size == 256 * MiB


def test_growth_is_planned_applied_and_a_smaller_size_only_warned(rig: CliRig) -> None:
    write_image(rig)
    rig.write_spec("web1", web1(size="128M"))
    rig.cli("apply")
    disk = rig.sim.path(DISK)
    head = read_head(disk, 2 * MiB)

    rig.write_spec("web1", web1(size="512M"))
    plan = rig.cli("plan")
    assert plan.stdout.splitlines() == [f"~ grow {DISK} 128M → 512M"], plan.stdout
    rig.cli("apply")
    assert disk.stat().st_size == 512 * MiB and read_head(disk, 2 * MiB) == head

    rig.write_spec("web1", web1(size="64M"))
    plan = rig.cli("plan")
    assert (plan.returncode, plan.stdout) == (0, "converged: nothing to do\n")
    warning = (
        f"guest web1: {DISK}: size 64M is smaller than the disk (512M); disks are never "
        "shrunk, so it stays as it is"
    )
    assert f"bhyve-reconciler: warning: {warning}" in plan.stderr
    rig.cli("apply")
    assert disk.stat().st_size == 512 * MiB
    validate = rig.cli("validate")
    assert "disk[0].size: warning: 64M is smaller than /vm/web1/disk0.img (512M)" in (
        validate.stdout
    )


ZVOL = "zroot/vm/web1"
SNAP = "zroot/images/debian-12@v1"
ZSPEC = f"""\
name = "web1"
state = "stopped"

[[disk]]
zvol = "{ZVOL}"
source = "{SNAP}"
size = "8G"
"""


def test_a_zvol_is_cloned_grown_recorded_and_never_destroyed(rig: CliRig) -> None:
    for argv in (
        ["zfs", "create", "-p", "-V", "2G", "zroot/images/debian-12"],
        ["zfs", "snapshot", SNAP],
    ):
        assert rig.sim.run(argv).returncode == 0
    rig.write_spec("web1", ZSPEC)

    apply, ran = rig.logged("apply")

    assert apply.returncode == 0, apply.stdout + apply.stderr
    assert ["zfs", "clone", "-p", "-o", "volmode=dev", SNAP, ZVOL] in ran
    assert ran.index(["zfs", "set", "volsize=8G", ZVOL]) > ran.index(
        ["zfs", "clone", "-p", "-o", "volmode=dev", SNAP, ZVOL]
    )
    assert rig.sim.zvols()[ZVOL] == 8 << 30
    assert rig.ledger().disks == {f"/dev/zvol/{ZVOL}": "web1"}
    plan = rig.cli("plan")
    assert plan.stdout == "converged: nothing to do\n", plan.stdout + plan.stderr

    (rig.conf_dir / "web1.toml").unlink()
    gone, ran = rig.logged("apply")
    assert f"- forget /dev/zvol/{ZVOL} (created for guest web1; kept, never deleted)" in (
        gone.stdout
    )
    assert not any(argv[:2] == ["zfs", "destroy"] for argv in ran)
    assert ZVOL in rig.sim.zvols()
    assert rig.ledger().disks == {}


SEEDED = f"""\
name = "web1"
loader = "uefi"
state = "stopped"

[[disk]]
path = "{DISK}"
size = "1G"

[[nic]]
tap = "tap0"
bridge = "bridge0"
mac = "58:9c:fc:00:00:21"

[cloud_init]
ssh_authorized_keys = ["{ED25519}"]
user_data = "/usr/local/etc/bhyve-reconciler/cloud/web.yaml"
network = {{ address = "192.0.2.21/24", gateway = "192.0.2.1", nameservers = ["192.0.2.1"] }}
"""


def read_seed(path: Path) -> tuple[bytes, dict[str, bytes]]:
    iso = pycdlib.PyCdlib()
    iso.open(str(path))
    try:
        files = {}
        for name in ("meta-data", "user-data", "network-config"):
            out = io.BytesIO()
            iso.get_file_from_iso_fp(out, rr_path=f"/{name}")
            files[name] = out.getvalue()
        return iso.pvd.volume_identifier.rstrip(), files
    finally:
        iso.close()


def test_the_seed_is_built_read_back_and_rebuilt_on_an_edit_only(rig: CliRig) -> None:
    user_data = rig.sim.path("/usr/local/etc/bhyve-reconciler/cloud/web.yaml")
    user_data.parent.mkdir(parents=True)
    user_data.write_text("#cloud-config\npackages: [nginx]\n")
    rig.write_spec("web1", SEEDED)

    first, ran = rig.logged("apply")

    assert first.returncode == 0, first.stdout + first.stderr
    seed = rig.state_dir / "guests/web1/seed.iso"
    label, files = read_seed(seed)
    assert label == b"CIDATA"
    meta = yaml.safe_load(files["meta-data"])
    assert meta["local-hostname"] == "web1"
    instance_id = meta["instance-id"]
    assert yaml.safe_load(files["user-data"]) == {
        "packages": ["nginx"],
        "ssh_authorized_keys": [ED25519],
    }
    assert files["user-data"].startswith(b"#cloud-config\n")
    network = yaml.safe_load(files["network-config"])
    assert network["ethernets"]["eth0"] == {
        "match": {"macaddress": "58:9c:fc:00:00:21"},
        "addresses": ["192.0.2.21/24"],
        "routes": [{"to": "0.0.0.0/0", "via": "192.0.2.1"}],
        "nameservers": {"addresses": ["192.0.2.1"]},
    }
    assert [a for a in ran if a[0] == "makefs"] == [
        ["makefs", "-t", "cd9660", "-o", "R,L=cidata",
         str(rig.state_dir / "guests/web1/.seed.iso.tmp"), str(rig.state_dir / "guests/web1/seed")],
    ]  # fmt: skip
    assert rig.ledger().files == {str(seed): "web1"}
    built = seed.stat()

    again, ran = rig.logged("apply")
    assert not any(a[0] == "makefs" for a in ran) and "seed" not in again.stdout
    assert (seed.stat().st_ino, seed.stat().st_mtime_ns) == (built.st_ino, built.st_mtime_ns)

    rig.write_spec("web1", SEEDED.replace(ED25519, ECDSA))
    plan = rig.cli("plan")
    assert f"~ rebuild cloud-init seed {seed} (iid-" in plan.stdout
    rig.cli("apply")
    _label, files = read_seed(seed)
    assert ECDSA.encode() in files["user-data"] and ED25519.encode() not in files["user-data"]
    assert yaml.safe_load(files["meta-data"])["instance-id"] != instance_id


def test_commands_shows_the_seed_cd(rig: CliRig) -> None:
    rig.sim.path("/usr/local/etc/bhyve-reconciler/cloud").mkdir(parents=True)
    rig.sim.path("/usr/local/etc/bhyve-reconciler/cloud/web.yaml").write_text("#!/bin/sh\n")
    rig.write_spec("web1", SEEDED)
    proc = rig.cli("commands", "web1")
    assert proc.returncode == 0, proc.stderr
    bhyve = proc.stdout.splitlines()[-1]
    seed = rig.state_dir / "guests/web1/seed.iso"
    assert f" -s 28:0,ahci-cd,{seed} " in bhyve
    assert bhyve.index("-s 3:0,virtio-blk,/vm/web1/disk0.img") < bhyve.index("-s 28:0,ahci-cd")


BAD = {
    "source": ('[[disk]]\npath = "/vm/a.img"\nsource = "images/a.raw"\n', "disk[0].source"),
    "clone": ('[[disk]]\nzvol = "zroot/vm/b"\nsource = "/vm/b.raw"\n', "disk[0].source"),
    "key": ('[[disk]]\npath = "/vm/c.img"\n[cloud_init]\nssh_authorized_keys = ["ssh-rsa x"]\n',
            "cloud_init.ssh_authorized_keys[0]"),
    "userdata": ('[[disk]]\npath = "/vm/d.img"\n[cloud_init]\nuser_data = "/etc/bad.yaml"\n',
                 "cloud_init.user_data"),
    "network": ('[[disk]]\npath = "/vm/e.img"\n[cloud_init]\nuser_data = "#!/bin/sh\\n"\n'
                '[cloud_init.network]\naddress = "192.0.2.0/24"\n', "cloud_init.network.address"),
}  # fmt: skip


def test_validate_rejects_each_bad_input_naming_the_file_and_the_key(rig: CliRig) -> None:
    rig.sim.path("/etc").mkdir(exist_ok=True)
    rig.sim.path("/etc/bad.yaml").write_text("#cloud-config\npackages: [nginx\n")
    for stem, (text, _key) in BAD.items():
        rig.write_spec(stem, text)
    proc = rig.cli("validate")
    assert proc.returncode == 1
    for stem, (_text, key) in BAD.items():
        prefix = f"{rig.conf_dir / stem}.toml: {key}: "
        assert any(line.startswith(prefix) for line in proc.stdout.splitlines()), (stem, proc)
    assert f"{rig.conf_dir / 'userdata'}.toml: cloud_init.user_data: /etc/bad.yaml: is not " \
        "valid YAML" in proc.stdout  # fmt: skip
