"""A pass during a large copy: the copy runs on in the background, the rest of the pass (other
guests) is done at once, the disk is in the ledger before any byte is copied, and a daemon that
dies mid-copy leaves nothing a new one cannot sweep."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import CliRig

from reconciler.actions import CreateDiskFile
from reconciler.converge import Converger
from reconciler.host import copier as copier_module
from reconciler.host.copier import ImageCopier
from reconciler.host.files import load_ledger, read_config, save_ledger
from reconciler.host.freebsd import FreeBSDHost
from reconciler.host.runner import SubprocessRunner
from reconciler.host.sparse import copy_sparse
from reconciler.imageactions import CopyImage
from reconciler.spec import Disk, GuestSpec, Lifecycle

MiB = 1 << 20
STOPPED = Lifecycle(state="stopped")
BIG = GuestSpec(
    name="big",
    lifecycle=STOPPED,
    disks=(Disk(path="/vm/big.img", source="/vm/images/big.raw", size=64 * MiB),),
)
SMALL = GuestSpec(name="small", lifecycle=STOPPED, disks=(Disk(path="/vm/small.img", size=MiB),))


def converger(rig: CliRig) -> Converger:
    config = read_config(rig.config)
    host = FreeBSDHost(SubprocessRunner(rig.sim.env()), root=rig.sim.root)
    return Converger(host, config, load_ledger(config.state_dir))


@pytest.fixture
def held_copy(monkeypatch: pytest.MonkeyPatch) -> tuple[threading.Event, threading.Event]:
    """Copies start, then hold until `release` is set (as a large one would run on)."""
    started, release = threading.Event(), threading.Event()
    real = copy_sparse

    def held(*args: Any, **kwargs: Any) -> Any:
        started.set()
        assert release.wait(10)
        return real(*args, **kwargs)

    monkeypatch.setattr(copier_module, "copy_sparse", held)
    return started, release


def test_a_pass_during_a_copy_does_everything_else_at_once(
    rig: CliRig, held_copy: tuple[threading.Event, threading.Event]
) -> None:
    started, release = held_copy
    image = rig.sim.path("/vm/images/big.raw")
    image.parent.mkdir(parents=True)
    image.write_bytes(b"\x55\xaa" * 4096)
    first = converger(rig)
    ended = threading.Event()
    first.host.copier = ImageCopier(on_done=lambda disk: ended.set(), retry_after=60.0)

    result = first.converge({"big": BIG, "small": SMALL}, supervised=frozenset())

    assert started.wait(10)
    status = {type(o.action).__name__: o.status for o in result.outcomes}
    assert (status["CopyImage"], status["CreateDiskFile"]) == ("pending", "done")
    assert all(s == "done" for name, s in status.items() if name != "CopyImage")
    assert rig.sim.path("/vm/small.img").exists()
    # Written ahead: a daemon killed now has the disk in its ledger, not yet on the host.
    assert load_ledger(rig.state_dir).disks == {"/vm/big.img": "big", "/vm/small.img": "small"}
    during = first.converge({"big": BIG, "small": SMALL}, supervised=frozenset())
    assert during.actions == ()
    assert "/vm/big.img is being copied from /vm/images/big.raw" in " ".join(during.errors)

    release.set()
    assert ended.wait(10)
    assert rig.sim.path("/vm/big.img").stat().st_size == 64 * MiB
    after = first.converge({"big": BIG, "small": SMALL}, supervised=frozenset())
    assert after.actions == () and after.errors == ()


def test_a_daemon_that_died_mid_copy_leaves_nothing_the_next_cannot_sweep(rig: CliRig) -> None:
    image = rig.sim.path("/vm/images/big.raw")
    image.parent.mkdir(parents=True)
    image.write_bytes(b"\x55\xaa" * 4096)
    dead = converger(rig)
    action = CopyImage(path="/vm/big.img", source="/vm/images/big.raw", size=64 * MiB,
                       size_text="64M", guest="big")  # fmt: skip
    # Its write-ahead (the ledger names the disk before the copy starts), then it died mid-copy:
    save_ledger(rig.state_dir, dead.ledger.after(action))
    partial = rig.sim.path("/vm/.big.img.q8z1x0.partial")
    partial.write_bytes(b"half")

    # The guest's file is gone meanwhile: the disk is forgotten, its temporary swept.
    gone = converger(rig).converge({}, supervised=frozenset())
    assert [a.describe() for a in gone.actions if a.guest == "big"] == [
        "- forget /vm/big.img (created for guest big; kept, never deleted)"
    ]
    assert not partial.exists()
    assert load_ledger(rig.state_dir).disks == {}

    # Or it is still wanted: the next daemon's copy sweeps the temporary and copies.
    save_ledger(rig.state_dir, dead.ledger.after(action))
    partial.write_bytes(b"half")
    again = converger(rig).converge({"big": replace(BIG)}, supervised=frozenset())
    assert [o.status for o in again.outcomes if isinstance(o.action, CopyImage)] == ["done"]
    assert not partial.exists()
    assert sorted(p.name for p in Path(rig.sim.path("/vm")).iterdir()) == ["big.img", "images"]
    assert not any(isinstance(a, CreateDiskFile) for a in again.actions)
