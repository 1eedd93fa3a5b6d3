"""Planning disks from images, growth and seeds as data: specs and facts in, actions out."""

from __future__ import annotations

from dataclasses import replace

import pytest
from cloud_keys import ED25519

from reconciler.actions import CreateDiskFile, Forget, StartGuest
from reconciler.cloudinit import seed_for
from reconciler.facts import DiskCopy, DiskFile, HostFacts, ImageFile
from reconciler.imageactions import BuildSeed, CloneZvol, CopyImage, GrowDisk
from reconciler.ledger import Ledger
from reconciler.plan import Plan, PlanContext, plan_actions
from reconciler.spec import CloudInit, Disk, GuestSpec, Lifecycle

GIB = 1 << 30
IMAGE = "/vm/images/debian-12.raw"
DISK = "/vm/web1/disk0.img"
CTX = PlanContext(guests_dir="/var/db/bhyve-reconciler/guests")
WEB1 = GuestSpec(
    name="web1",
    source="/conf.d/web1.toml",
    loader="uefi",
    disks=(Disk(path=DISK, source=IMAGE, size=20 * GIB),),
)
CLOUD = CloudInit(ssh_authorized_keys=(ED25519,))
HOST = HostFacts(modules=frozenset({"vmm", "nmdm"}), sysctls={"net.link.tap.up_on_open": "1"})
RAW = ImageFile(exists=True, size=2 * GIB)


def planned(*guests: GuestSpec, ctx: PlanContext = CTX, **facts: object) -> Plan:
    return plan_actions(
        {g.name: g for g in guests},
        replace(HOST, **facts),  # type: ignore[arg-type]
        Ledger(),
        ctx,
    )


def lines(plan: Plan) -> list[str]:
    return [a.describe() for a in plan.actions]


# --- file disks from an image -------------------------------------------------------------------


def test_a_missing_disk_is_copied_from_its_image_and_the_start_waits_for_the_copy() -> None:
    plan = planned(WEB1, disks={DISK: DiskFile(exists=False)}, images={IMAGE: RAW})
    copy = CopyImage(path=DISK, source=IMAGE, size=20 * GIB, size_text="20G", guest="web1")
    assert plan.actions == (
        copy,
        StartGuest(name="web1", guest="web1", requires=(CopyImage.key_of(DISK),)),
    )
    assert lines(plan)[0] == (f"+ copy image {IMAGE} to {DISK} (20G, sparse) for guest web1")
    assert plan.blocked == {}


def test_without_a_size_the_disk_is_the_images_size() -> None:
    guest = replace(WEB1, disks=(Disk(path=DISK, source=IMAGE),))
    plan = planned(guest, disks={DISK: DiskFile(exists=False)}, images={IMAGE: RAW})
    assert plan.actions[0] == CopyImage(
        path=DISK, source=IMAGE, size=2 * GIB, size_text="2G", guest="web1"
    )


def test_an_existing_disk_is_never_copied_again() -> None:
    plan = planned(WEB1, disks={DISK: DiskFile(exists=True, size=20 * GIB)}, images={})
    assert [type(a) for a in plan.actions] == [StartGuest]


WAITS = [
    # (id, image fact, copy in flight, fragment of why the start waits)
    ("missing", ImageFile(exists=False, problem=f"the image {IMAGE} does not exist (yet)"), None,
     f"the image {IMAGE} does not exist (yet)"),
    ("qcow2", ImageFile(exists=True, size=GIB, problem=f"{IMAGE} is a qcow2 image (version 3), "
     "and bhyve boots raw images only: convert it with `qemu-img convert -O raw ...`"), None,
     "qemu-img convert -O raw"),
    ("larger-than-size", ImageFile(exists=True, size=30 * GIB), None,
     f"{DISK}: size 20G is smaller than the image {IMAGE} (30G)"),
    ("copying", RAW, DiskCopy(IMAGE, done=GIB // 2, total=GIB, rate=100 * (1 << 20)),
     f"{DISK} is being copied from {IMAGE} (50%, 512.0M of 1.0G at 100.0M/s)"),
    ("copy-failed", RAW, DiskCopy(IMAGE, error="copy failed: No space left on device"),
     f"copying {IMAGE} to {DISK} failed: copy failed: No space left on device; the next "
     "resync tries again"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("image", "copy", "fragment"), [c[1:] for c in WAITS], ids=[c[0] for c in WAITS]
)
def test_what_cannot_be_copied_yet_makes_the_start_wait_and_says_why(
    image: ImageFile, copy: DiskCopy | None, fragment: str
) -> None:
    copies = {DISK: copy} if copy is not None else {}
    plan = planned(WEB1, disks={DISK: DiskFile(exists=False)}, images={IMAGE: image}, copies=copies)
    assert plan.actions == ()  # no copy, no start: the guest waits, it does not crash-loop
    assert fragment in plan.blocked["web1"]
    # A stopped guest starts nothing: the same reason is a warning.
    stopped = replace(WEB1, lifecycle=Lifecycle(state="stopped"))
    plan = planned(
        stopped, disks={DISK: DiskFile(exists=False)}, images={IMAGE: image}, copies=copies
    )
    assert plan.blocked == {}
    assert any(fragment in w and w.startswith("guest web1: ") for w in plan.warnings)


# --- growth ---------------------------------------------------------------------------------------


def test_a_larger_size_grows_a_stopped_guests_disk() -> None:
    plan = planned(WEB1, disks={DISK: DiskFile(exists=True, size=10 * GIB)})
    grow = plan.actions[0]
    assert grow == GrowDisk(
        device=DISK,
        size=20 * GIB,
        size_text="20G",
        current=10 * GIB,
        current_text="10G",
        guest="web1",
    )
    assert grow.describe() == f"~ grow {DISK} 10G → 20G"
    assert grow.argv is None  # the driver extends the file
    assert plan.actions[1] == StartGuest(
        name="web1", guest="web1", requires=(GrowDisk.key_of(DISK),)
    )


def test_a_smaller_size_is_a_warning_never_an_action() -> None:
    plan = planned(WEB1, disks={DISK: DiskFile(exists=True, size=40 * GIB)})
    assert [type(a) for a in plan.actions] == [StartGuest]
    assert plan.warnings == (
        f"guest web1: {DISK}: size 20G is smaller than the disk (40G); disks are never "
        "shrunk, so it stays as it is",
    )


def test_nothing_grows_under_a_running_guest() -> None:
    ctx = replace(CTX, running=frozenset({"web1"}))
    plan = planned(WEB1, ctx=ctx, disks={DISK: DiskFile(exists=True, size=10 * GIB)})
    assert plan.actions == ()


def test_a_device_is_not_grown() -> None:
    guest = replace(WEB1, disks=(Disk(path="/dev/ada1", size=20 * GIB),))
    plan = planned(guest, disks={"/dev/ada1": DiskFile(exists=True, size=0, regular=False)})
    assert [type(a) for a in plan.actions] == [StartGuest]
    assert plan.warnings == ()


def test_an_empty_disk_is_still_created_with_its_size() -> None:
    guest = replace(WEB1, disks=(Disk(path=DISK, size=20 * GIB),))
    plan = planned(guest, disks={DISK: DiskFile(exists=False)})
    assert isinstance(plan.actions[0], CreateDiskFile)


# --- zvol disks from a snapshot -------------------------------------------------------------------

ZVOL = "zroot/vm/web1"
SNAP = "zroot/images/debian-12@v1"
ZWEB = replace(WEB1, disks=(Disk(zvol=ZVOL, source=SNAP, size=20 * GIB),))


def test_a_missing_zvol_is_cloned_then_grown() -> None:
    plan = planned(ZWEB, zvols={}, snapshots={SNAP: 2 * GIB})
    clone, grow, start = plan.actions
    assert clone == CloneZvol(zvol=ZVOL, snapshot=SNAP, guest="web1")
    assert clone.argv == ("zfs", "clone", "-p", "-o", "volmode=dev", SNAP, ZVOL)
    assert clone.describe() == f"+ clone ZFS snapshot {SNAP} to volume {ZVOL} for guest web1"
    assert isinstance(grow, GrowDisk)
    assert grow.argv == ("zfs", "set", "volsize=20G", ZVOL)
    assert grow.requires == (CloneZvol.key_of(f"/dev/zvol/{ZVOL}"),)
    assert grow.describe() == f"~ grow {ZVOL} 2G → 20G"
    assert isinstance(start, StartGuest) and set(start.requires) == {clone.key, grow.key}


def test_a_clone_the_size_of_its_snapshot_is_not_grown() -> None:
    guest = replace(ZWEB, disks=(Disk(zvol=ZVOL, source=SNAP),))
    plan = planned(guest, zvols={}, snapshots={SNAP: 2 * GIB})
    assert [type(a) for a in plan.actions] == [CloneZvol, StartGuest]


def test_a_missing_or_unobserved_snapshot_makes_the_start_wait() -> None:
    plan = planned(ZWEB, zvols={}, snapshots={})
    assert plan.actions == ()
    assert (
        plan.blocked["web1"] == f"the snapshot {SNAP} does not exist (yet), or is not of a volume"
    )
    plan = planned(ZWEB, zvols={}, snapshots=None, unobserved={"snapshots": "zfs: EIO"})
    assert plan.blocked["web1"] == "ZFS snapshots not observed: zfs: EIO"


def test_an_existing_zvol_grows_and_never_shrinks() -> None:
    plan = planned(ZWEB, zvols={ZVOL: 10 * GIB})
    assert plan.actions[0].argv == ("zfs", "set", "volsize=20G", ZVOL)
    plan = planned(ZWEB, zvols={ZVOL: 40 * GIB})
    assert [type(a) for a in plan.actions] == [StartGuest]
    assert plan.warnings[0].startswith(f"guest web1: {ZVOL}: size 20G is smaller than the disk")


def test_a_gone_guests_clone_is_forgotten_never_destroyed() -> None:
    ledger = Ledger().after(CloneZvol(zvol=ZVOL, snapshot=SNAP, guest="web1"))
    assert ledger.disks == {f"/dev/zvol/{ZVOL}": "web1"}
    plan = plan_actions({}, replace(HOST, zvols={ZVOL: 20 * GIB}), ledger, CTX)
    assert plan.actions == (Forget(kind="disk", what=f"/dev/zvol/{ZVOL}", guest="web1"),)
    assert all(a.argv is None or "destroy" not in a.argv for a in plan.actions)


# --- the seed -------------------------------------------------------------------------------------

SEEDED = replace(
    WEB1,
    disks=(Disk(path=DISK),),
    cloud_init=CLOUD,
)
SEED_ISO = "/var/db/bhyve-reconciler/guests/web1/seed.iso"


def test_a_guest_without_a_seed_gets_one_before_its_start() -> None:
    plan = planned(SEEDED)
    seed, errors = seed_for(SEEDED)
    assert seed is not None and errors is None
    build = plan.actions[0]
    assert build == BuildSeed(
        path=SEED_ISO,
        directory="/var/db/bhyve-reconciler/guests/web1/seed",
        staging="/var/db/bhyve-reconciler/guests/web1/.seed.iso.tmp",
        stamp="/var/db/bhyve-reconciler/guests/web1/seed.id",
        instance_id=seed.instance_id,
        files=tuple(sorted(seed.files.items())),
        guest="web1",
    )
    assert build.argv == (
        "makefs", "-t", "cd9660", "-o", "R,L=cidata",
        "/var/db/bhyve-reconciler/guests/web1/.seed.iso.tmp",
        "/var/db/bhyve-reconciler/guests/web1/seed",
    )  # fmt: skip
    assert build.describe() == (
        f"~ build cloud-init seed {SEED_ISO} ({seed.instance_id}) for guest web1"
    )


def test_a_current_seed_is_not_rebuilt_and_a_changed_one_is() -> None:
    seed, _ = seed_for(SEEDED)
    assert seed is not None
    current = planned(SEEDED, seeds={"web1": seed.instance_id})
    assert not any(isinstance(a, BuildSeed) for a in current.actions)
    edited = replace(SEEDED, cloud_init=replace(CLOUD, hostname="www"))
    rebuilt = planned(edited, seeds={"web1": seed.instance_id})
    build = rebuilt.actions[0]
    assert isinstance(build, BuildSeed) and build.rebuild
    assert build.instance_id != seed.instance_id
    assert build.describe().startswith("~ rebuild cloud-init seed")


def test_a_running_guests_seed_waits_for_its_next_boot() -> None:
    edited = replace(SEEDED, cloud_init=replace(CLOUD, hostname="www"))
    ctx = replace(CTX, running=frozenset({"web1"}))
    assert planned(edited, ctx=ctx, seeds={"web1": "iid-old"}).actions == ()


def test_a_user_data_file_that_was_not_read_makes_the_start_wait() -> None:
    named = replace(SEEDED, cloud_init=replace(CLOUD, user_data="/etc/cloud/web.yaml"))
    plan = planned(named)
    assert plan.actions == ()
    assert "its cloud-init seed cannot be made" in plan.blocked["web1"]
    assert "/etc/cloud/web.yaml" in plan.blocked["web1"]
    assert named.cloud_init is not None
    read = replace(named, cloud_init=replace(named.cloud_init, user_data_content="#cloud-config\n"))
    assert isinstance(planned(read).actions[0], BuildSeed)


def test_the_seed_of_a_gone_guest_is_forgotten_and_a_wanted_one_kept() -> None:
    build = BuildSeed(
        path=SEED_ISO, directory="d", staging="s", stamp="t", instance_id="i", files=(),
        guest="web1",
    )  # fmt: skip
    ledger = Ledger().after(build)
    assert ledger.files == {SEED_ISO: "web1"}
    seed, _ = seed_for(SEEDED)
    assert seed is not None
    kept = plan_actions(
        {"web1": SEEDED}, replace(HOST, seeds={"web1": seed.instance_id}),
        ledger, CTX,
    )  # fmt: skip
    assert not any(isinstance(a, Forget) for a in kept.actions)
    gone = plan_actions({}, HOST, ledger, CTX)
    assert gone.actions == (Forget(kind="file", what=SEED_ISO, guest="web1"),)
