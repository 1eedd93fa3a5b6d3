"""The FreeBSD driver's disks from images, growth and seeds, on real files: what it observes,
what each action does, and that nothing it does removes or shrinks a disk."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import structlog

from reconciler.actions import Forget
from reconciler.errors import HostCommandError
from reconciler.execute import execute_actions
from reconciler.host.copier import ImageCopier
from reconciler.host.freebsd import FreeBSDHost
from reconciler.host.runner import DEFAULT_TIMEOUT, Result
from reconciler.host.sparse import Progress
from reconciler.imageactions import BuildSeed, CopyImage, GrowDisk
from reconciler.ledger import Ledger
from reconciler.spec import Disk, GuestSpec

MiB = 1 << 20
GiB = 1 << 30
QCOW2_HEAD = b"QFI\xfb\x00\x00\x00\x03" + bytes(504)


@dataclass
class FakeRunner:
    """Answers `zfs list` from `zfs` and runs `makefs` by writing the image it names."""

    snapshots: dict[str, int] = field(default_factory=dict)
    makefs_fails: bool = False
    ran: list[tuple[str, ...]] = field(default_factory=list)

    def run(self, argv: Sequence[str], *, timeout: float = DEFAULT_TIMEOUT) -> Result:
        args = tuple(argv)
        self.ran.append(args)
        if args[:2] == ("zfs", "list") and "snapshot" in args:
            names = args[args.index("name,volsize") + 1 :]
            out = "".join(f"{n}\t{self.snapshots[n]}\n" for n in names if n in self.snapshots)
            err = "".join(
                f"cannot open '{n}': dataset does not exist\n"
                for n in names
                if n not in self.snapshots
            )
            return Result(args, 1 if err else 0, out.encode(), err.encode())
        if args[0] == "makefs":
            if self.makefs_fails:
                return Result(args, 1, b"", b"makefs: No space left on device\n")
            files = sorted(os.listdir(args[-1]))
            Path(args[-2]).write_text("ISO of " + ",".join(files))
            return Result(args, 0, b"", b"")
        return Result(args, 0, b"", b"")

    def spawn(self, argv: Sequence[str], *, output: Path | None = None) -> object:
        raise AssertionError("nothing is spawned here")


def write_sparse(path: Path, size: int, regions: list[tuple[int, bytes]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        f.truncate(size)
        for offset, data in regions:
            f.seek(offset)
            f.write(data)


@pytest.fixture
def host(tmp_path: Path) -> FreeBSDHost:
    return FreeBSDHost(FakeRunner(), root=tmp_path / "root")  # type: ignore[arg-type]


def guest(*disks: Disk, name: str = "web1") -> GuestSpec:
    return GuestSpec(name=name, disks=disks)


# --- observing ------------------------------------------------------------------------------------


def test_a_missing_disks_image_is_read_and_judged(host: FreeBSDHost) -> None:
    write_sparse(host.host_path("/img/raw.img"), 8 * MiB, [(510, b"\x55\xaa")])
    write_sparse(host.host_path("/img/cloud.qcow2"), MiB, [(0, QCOW2_HEAD)])
    desired = {
        "a": guest(Disk(path="/vm/a.img", source="/img/raw.img"), name="a"),
        "b": guest(Disk(path="/vm/b.img", source="/img/cloud.qcow2"), name="b"),
        "c": guest(Disk(path="/vm/c.img", source="/img/none.raw"), name="c"),
    }
    facts = host.observe(desired, Ledger())
    raw, qcow2, missing = (
        facts.images[p] for p in ("/img/raw.img", "/img/cloud.qcow2", "/img/none.raw")
    )
    assert (raw.exists, raw.size, raw.problem) == (True, 8 * MiB, None)
    assert qcow2.problem is not None and "qcow2" in qcow2.problem
    assert "qemu-img convert -O raw /img/cloud.qcow2 /img/cloud.raw" in qcow2.problem
    assert missing.problem == "the image /img/none.raw does not exist (yet)"
    assert facts.disks["/vm/a.img"].exists is False


def test_an_existing_disks_image_is_not_read(host: FreeBSDHost) -> None:
    write_sparse(host.host_path("/vm/a.img"), MiB, [])
    facts = host.observe({"a": guest(Disk(path="/vm/a.img", source="/img/x.raw"))}, Ledger())
    assert facts.images == {}
    assert facts.disks["/vm/a.img"].size == MiB


def test_snapshots_are_listed_in_one_command_only_for_missing_clones(tmp_path: Path) -> None:
    runner = FakeRunner(snapshots={"zroot/img@v1": 2 * GiB})
    host = FreeBSDHost(runner, root=tmp_path)  # type: ignore[arg-type]
    desired = {
        "a": guest(Disk(zvol="zroot/vm/a", source="zroot/img@v1"), name="a"),
        "b": guest(Disk(zvol="zroot/vm/b", source="zroot/img@gone"), name="b"),
    }
    facts = host.observe(desired, Ledger())
    assert facts.snapshots == {"zroot/img@v1": 2 * GiB}
    listings = [a for a in runner.ran if "snapshot" in a]
    assert listings == [
        ("zfs", "list", "-H", "-p", "-t", "snapshot", "-o", "name,volsize",
         "zroot/img@gone", "zroot/img@v1"),
    ]  # fmt: skip


def test_seed_ids_come_from_the_stamp_beside_an_existing_seed(
    host: FreeBSDHost, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "seed.iso").write_text("iso")
    (state / "seed.id").write_text("iid-0123456789abcdef\n")
    seeds = {"a": (str(state / "seed.iso"), str(state / "seed.id"))}
    seeds["b"] = (str(state / "none.iso"), str(state / "seed.id"))  # image gone: no seed
    assert host.observe({}, Ledger(), seeds=seeds).seeds == {"a": "iid-0123456789abcdef"}


# --- copying and growing --------------------------------------------------------------------------


def test_apply_copies_an_image_sparse_and_grown(host: FreeBSDHost) -> None:
    head, tail = os.urandom(MiB), os.urandom(64 * 1024)
    write_sparse(
        host.host_path("/img/raw.img"), 16 * MiB, [(0, head), (16 * MiB - len(tail), tail)]
    )
    stale = host.host_path("/vm/.disk0.img.crashed.partial")
    write_sparse(stale, MiB, [])
    action = CopyImage(path="/vm/disk0.img", source="/img/raw.img", size=64 * MiB, size_text="64M")

    assert host.apply(action) is True

    disk = host.host_path("/vm/disk0.img")
    data = disk.read_bytes()
    assert len(data) == 64 * MiB
    assert data[: len(head)] == head and data[16 * MiB - len(tail) : 16 * MiB] == tail
    assert data[len(head) : 16 * MiB - len(tail)].count(0) == 15 * MiB - len(tail)
    assert disk.stat().st_blocks * 512 < 4 * MiB  # the holes stayed holes
    assert not stale.exists()  # a crashed copy's temporary is swept first
    assert host.apply(action) is False  # never copied again, never overwritten
    assert disk.read_bytes() == data


def test_a_failed_copy_is_a_failed_action_and_leaves_nothing(host: FreeBSDHost) -> None:
    write_sparse(host.host_path("/img/raw.img"), 16 * MiB, [(0, b"x")])
    action = CopyImage(path="/vm/disk0.img", source="/img/raw.img", size=MiB, size_text="1M")
    with pytest.raises(HostCommandError, match="more than the disk's size"):
        host.apply(action)
    assert sorted(os.listdir(host.host_path("/vm"))) == []


def test_growth_extends_a_file_and_never_shrinks_it(host: FreeBSDHost) -> None:
    disk = host.host_path("/vm/disk0.img")
    write_sparse(disk, 10 * MiB, [(0, b"boot")])
    grow = GrowDisk(device="/vm/disk0.img", size=20 * MiB, size_text="20M", current=10 * MiB,
                    current_text="10M")  # fmt: skip
    assert host.apply(grow) is True
    assert disk.stat().st_size == 20 * MiB and disk.read_bytes()[:4] == b"boot"
    smaller = GrowDisk(device="/vm/disk0.img", size=5 * MiB, size_text="5M", current=20 * MiB,
                       current_text="20M")  # fmt: skip
    assert host.apply(smaller) is False
    assert disk.stat().st_size == 20 * MiB
    gone = GrowDisk(
        device="/vm/gone.img", size=5 * MiB, size_text="5M", current=1, current_text="1B"
    )
    report = execute_actions([gone], host.apply, Ledger())
    assert report.outcomes[0].status == "failed"
    assert not host.host_path("/vm/gone.img").exists()  # not made anew by a growth


def test_forgetting_a_disk_sweeps_a_crashed_copy_but_keeps_the_disk(host: FreeBSDHost) -> None:
    disk = host.host_path("/vm/disk0.img")
    write_sparse(disk, MiB, [(0, b"data")])
    stale = host.host_path("/vm/.disk0.img.x1y2.partial")
    write_sparse(stale, MiB, [])
    assert host.apply(Forget(kind="disk", what="/vm/disk0.img", guest="web1")) is True
    assert disk.read_bytes()[:4] == b"data"
    assert not stale.exists()


# --- seeds ----------------------------------------------------------------------------------------


def seed_action(state: Path, instance_id: str = "iid-1") -> BuildSeed:
    return BuildSeed(
        path=str(state / "seed.iso"),
        directory=str(state / "seed"),
        staging=str(state / ".seed.iso.tmp"),
        stamp=str(state / "seed.id"),
        instance_id=instance_id,
        files=(("meta-data", b"instance-id: x\n"), ("user-data", b"#cloud-config\n")),
        guest="web1",
    )


def test_a_seed_is_built_with_makefs_renamed_into_place_then_stamped(tmp_path: Path) -> None:
    runner = FakeRunner()
    host = FreeBSDHost(runner, root=tmp_path / "root")  # type: ignore[arg-type]
    state = tmp_path / "state" / "web1"
    (state / "seed").mkdir(parents=True)
    (state / "seed" / "network-config").write_text("old")  # the previous seed's

    assert host.apply(seed_action(state)) is True

    assert runner.ran == [seed_action(state).argv]
    assert (state / "seed.iso").read_text() == "ISO of meta-data,user-data"
    assert (state / "seed.id").read_text() == "iid-1\n"
    assert not (state / ".seed.iso.tmp").exists()
    assert (state / "seed" / "user-data").read_bytes() == b"#cloud-config\n"
    assert oct((state / "seed" / "user-data").stat().st_mode & 0o777) == "0o600"
    assert oct((state / "seed.iso").stat().st_mode & 0o777) == "0o600"


def test_a_failed_makefs_keeps_the_old_seed_and_its_stamp(tmp_path: Path) -> None:
    runner = FakeRunner()
    host = FreeBSDHost(runner, root=tmp_path / "root")  # type: ignore[arg-type]
    state = tmp_path / "state" / "web1"
    host.apply(seed_action(state, "iid-old"))
    runner.makefs_fails = True
    with pytest.raises(HostCommandError, match="No space left on device"):
        host.apply(seed_action(state, "iid-new"))
    assert (state / "seed.id").read_text() == "iid-old\n"
    assert (state / "seed.iso").exists() and not (state / ".seed.iso.tmp").exists()


# --- background copies ----------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_background_copy_is_pending_then_done_and_wakes_the_daemon(host: FreeBSDHost) -> None:
    write_sparse(host.host_path("/img/raw.img"), 4 * MiB, [(0, b"x" * 4096)])
    done = threading.Event()
    woken: list[str] = []

    def on_done(path: str) -> None:
        woken.append(path)
        done.set()

    host.copier = ImageCopier(on_done=on_done, retry_after=60.0)
    action = CopyImage(path="/vm/disk0.img", source="/img/raw.img", size=8 * MiB, size_text="8M",
                       guest="web1")  # fmt: skip
    ahead = Ledger().after(action)

    report = execute_actions([action], host.apply, ahead)

    assert report.outcomes[0].status == "pending"
    assert report.ledger.disks == {"/vm/disk0.img": "web1"}  # claimed ahead, kept
    assert done.wait(10)
    assert woken == ["/vm/disk0.img"]
    assert host.host_path("/vm/disk0.img").stat().st_size == 8 * MiB
    assert host.copier.copies() == {}


def test_a_failed_background_copy_waits_for_the_retry(host: FreeBSDHost) -> None:
    clock = Clock()
    done = threading.Event()
    copier = ImageCopier(on_done=lambda path: done.set(), retry_after=60.0, clock=clock)
    action = CopyImage(path="/vm/disk0.img", source="/img/none.raw", size=MiB, size_text="1M")
    copier.start(action, host.host_path("/img/none.raw"), host.host_path("/vm/disk0.img"))
    assert done.wait(10)
    failed = copier.copies()["/vm/disk0.img"]
    assert failed.source == "/img/none.raw" and failed.error is not None
    assert "cannot open the image" in failed.error
    clock.now += 59.0
    assert set(copier.copies()) == {"/vm/disk0.img"}
    clock.now += 1.0
    assert copier.copies() == {}


def test_stopping_cancels_a_copy_and_leaves_no_temporary(host: FreeBSDHost) -> None:
    write_sparse(host.host_path("/img/raw.img"), 64 * MiB, [(i * MiB, b"x") for i in range(64)])
    started = threading.Event()
    release = threading.Event()
    copier = ImageCopier(on_done=lambda path: None, retry_after=60.0, progress_interval=0.0)
    real_progress = copier.progress

    def slow_progress(action: CopyImage, progress: Progress, fields: dict[str, object]) -> None:
        real_progress(action, progress, fields)
        started.set()
        release.wait(10)

    copier.progress = slow_progress  # type: ignore[method-assign]
    action = CopyImage(path="/vm/disk0.img", source="/img/raw.img", size=64 * MiB, size_text="64M")
    copier.start(action, host.host_path("/img/raw.img"), host.host_path("/vm/disk0.img"))
    assert started.wait(10)
    in_flight = copier.copies()["/vm/disk0.img"]
    assert (in_flight.source, in_flight.error) == ("/img/raw.img", None)
    assert 0 < in_flight.done <= in_flight.total <= 64 * MiB  # the image's data regions
    stopper = threading.Thread(target=copier.stop)
    stopper.start()
    release.set()
    stopper.join(10)
    assert copier.copies() == {}
    assert sorted(os.listdir(host.host_path("/vm"))) == []


def test_a_copy_logs_its_progress_and_its_end(host: FreeBSDHost) -> None:
    write_sparse(host.host_path("/img/raw.img"), 8 * MiB, [(0, os.urandom(2 * MiB))])
    done = threading.Event()
    copier = ImageCopier(on_done=lambda path: done.set(), retry_after=60.0, progress_interval=0.0)
    action = CopyImage(path="/vm/disk0.img", source="/img/raw.img", size=8 * MiB, size_text="8M",
                       guest="web1")  # fmt: skip
    with structlog.testing.capture_logs() as logs:
        copier.start(action, host.host_path("/img/raw.img"), host.host_path("/vm/disk0.img"))
        assert done.wait(10)
    events = [e["event"] for e in logs]
    assert events[0] == "disk.copy_started" and events[-1] == "disk.copied"
    progress = [e for e in logs if e["event"] == "disk.copy_progress"]
    assert progress and progress[-1]["done_bytes"] == progress[-1]["total_bytes"] >= 2 * MiB
    assert progress[-1]["percent"] == 100
    assert all(
        {"guest", "disk", "image", "done_bytes", "total_bytes", "rate_mib_s"} <= e.keys()
        for e in progress
    )


def test_forgetting_a_disk_cancels_its_copy(host: FreeBSDHost) -> None:
    write_sparse(host.host_path("/img/raw.img"), 64 * MiB, [(i * MiB, b"x") for i in range(64)])
    started, release = threading.Event(), threading.Event()
    ended: list[str] = []
    host.copier = ImageCopier(on_done=ended.append, retry_after=60.0, progress_interval=0.0)
    real_progress = host.copier.progress

    def slow_progress(action: CopyImage, progress: Progress, fields: dict[str, object]) -> None:
        real_progress(action, progress, fields)
        started.set()
        release.wait(10)

    host.copier.progress = slow_progress  # type: ignore[method-assign]
    action = CopyImage(path="/vm/disk0.img", source="/img/raw.img", size=64 * MiB,
                       size_text="64M", guest="gone")  # fmt: skip
    execute_actions([action], host.apply, Ledger())
    assert started.wait(10)
    forget = threading.Thread(
        target=host.apply, args=(Forget(kind="disk", what="/vm/disk0.img", guest="gone"),)
    )
    forget.start()
    release.set()
    forget.join(10)
    assert host.copier.copies() == {} and ended == []
    assert sorted(os.listdir(host.host_path("/vm"))) == []  # no disk, no temporary
