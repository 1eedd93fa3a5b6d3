"""`bhyve-reconciler new NAME`, the real CLI on the simulated host: a starter spec that
validates for every loader, written 0644 and never over an existing file, with the command
lines `commands NAME` prints; a tap only when asked; nothing that clashes with conf.d."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from e2e_helpers import CliRig

from reconciler.cli.specfiles import create_file
from reconciler.guestfile import parse_guest_text
from reconciler.spec import LOADERS
from reconciler.specdir import ConfDir

ISO = "/vm/iso/x.iso"


def valid_files(rig: CliRig) -> dict[str, str]:
    """What `validate` reads: each file's state after a scan of conf.d, as the daemon's."""
    snapshot = ConfDir(rig.conf_dir, root=rig.sim.root).scan()
    assert snapshot.errors == ()
    return {Path(f).name: s.status for f, s in snapshot.files.items()}


@pytest.mark.parametrize("loader", LOADERS)
def test_new_writes_a_spec_that_validates_and_prints_its_boot(rig: CliRig, loader: str) -> None:
    proc = rig.cli(
        "new", "web2", "--loader", loader, "--cpus", "2", "--memory", "2G", "--disk", "20G",
        "--disk", "4G", "--bridge", "bridge0", "--iso", ISO,
    )  # fmt: skip

    assert proc.returncode == 0, proc.stderr
    path = rig.conf_dir / "web2.toml"
    assert proc.stdout.splitlines()[0] == f"wrote {path}"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    spec, errors = parse_guest_text(path.read_text(), file=str(path), stem="web2")
    assert errors == [] and spec is not None
    assert (spec.loader, spec.cpus, spec.memory) == (loader, 2, "2G")
    assert [(d.path, d.size) for d in spec.disks] == [
        ("/vm/web2/disk0.img", 20 << 30),
        ("/vm/web2/disk1.img", 4 << 30),
    ]
    assert [(n.bridge, n.tap) for n in spec.nics] == [("bridge0", None)]
    assert spec.install is not None and spec.install.iso == ISO
    assert spec.uefi.vars is (loader == "uefi")  # a UEFI install writes its boot entries there
    assert valid_files(rig) == {"web2.toml": "valid"}
    # What it prints is what `commands` says: the ISO boots, the disk is not there yet.
    boot = [line.strip() for line in proc.stdout.splitlines()[2:]]
    assert boot == rig.cli("commands", "web2").stdout.splitlines()
    assert any(f"ahci-cd,{ISO}" in line for line in boot)


def test_new_never_overwrites_a_spec(rig: CliRig) -> None:
    path = rig.write_spec("web2", 'name = "web2"\n[[disk]]\npath = "/vm/mine.img"\n')
    before = path.read_text()

    proc = rig.cli("new", "web2")

    assert proc.returncode == 1
    assert f"{path} exists: `new` never overwrites a spec" in proc.stderr
    assert path.read_text() == before


def test_new_refuses_what_a_spec_in_conf_d_holds(rig: CliRig) -> None:
    rig.write_spec("old", 'name = "old"\n[[disk]]\npath = "/vm/web2/disk0.img"\n')

    proc = rig.cli("new", "web2")

    assert proc.returncode == 1
    assert "disk `/vm/web2/disk0.img` is already claimed by guest `old`" in proc.stderr
    assert not (rig.conf_dir / "web2.toml").exists()


def test_a_tap_is_picked_only_when_asked(rig: CliRig) -> None:
    rig.write_spec("old", 'name = "old"\n[[disk]]\npath = "/vm/o.img"\n[[nic]]\ntap = "tap0"\n')

    assert rig.cli("new", "plain", "--bridge", "bridge0").returncode == 0
    assert rig.cli("new", "tapped", "--bridge", "bridge0", "--tap").returncode == 0

    assert "tap =" not in (rig.conf_dir / "plain.toml").read_text()
    # tap0 is old's; the daemon would give plain tap1 at its next pass, so tapped gets tap2.
    assert 'tap = "tap2"' in (rig.conf_dir / "tapped.toml").read_text()
    assert set(valid_files(rig).values()) == {"valid"}


def test_a_dry_run_prints_the_spec_and_writes_nothing(rig: CliRig) -> None:
    proc = rig.cli("new", "web2", "--zvol", "zroot/vm", "--dry-run")

    assert proc.returncode == 0, proc.stderr
    assert list(rig.conf_dir.iterdir()) == []
    assert '{ zvol = "zroot/vm/web2-disk0", size = "16G" }' in proc.stdout


def test_wrong_options_are_refused_by_key(rig: CliRig) -> None:
    proc = rig.cli("new", "web2", "--memory", "lots", "--iso", "x.iso")

    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        "bhyve-reconciler: memory: expected a size like 16G or 1024M, got 'lots'",
        'bhyve-reconciler: install.iso: "x.iso" must be an absolute path',
    ]
    assert list(rig.conf_dir.iterdir()) == []


def test_a_file_is_created_whole_with_its_mode_or_not_at_all(tmp_path: Path) -> None:
    path = tmp_path / "g.toml"
    old_umask = os.umask(0o077)
    try:
        assert create_file(path, "a = 1\n") is True
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # whatever the umask says
    assert create_file(path, "b = 2\n") is False
    assert path.read_text() == "a = 1\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.toml"]  # no temporary left
