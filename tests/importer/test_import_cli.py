"""`bhyve-reconciler import vm-bhyve`, the real CLI on the simulated host: the three guests'
`commands NAME` after import are vm-run's command lines (the oracle, reconciler/vmbhyve/run.py);
specs are written 0644, validate, are never overwritten; --dry-run writes nothing; the report
names what was not carried over and why; --config gets the bridges it lacks."""

from __future__ import annotations

import shlex
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from e2e_helpers import CliRig, sparse_file
from vmbhyve_fixtures import TEMPLATES, VM_DIR, guest_conf, system_conf

from reconciler.config import parse_config
from reconciler.vmbhyve import RunFacts, vm_run_commands

THREE = ("deb", "fbsd", "win")
WIN_ISO = "/vm/.iso/Win11_24H2.iso"


def vm_bhyve_host(rig: CliRig, guests: tuple[str, ...] = THREE) -> None:
    """The fixtures' datastore at /vm on the simulated host, as a vm-bhyve host has it after
    the guests ran: their disk images and the Windows guest's UEFI variables exist."""
    shutil.copytree(VM_DIR / ".config", rig.sim.path("/vm/.config"))
    for name in guests:
        shutil.copytree(VM_DIR / name, rig.sim.path(f"/vm/{name}"))
    for image in ("/vm/fbsd/disk0.img", "/vm/win/disk0.img", "/vm/win/data.img"):
        sparse_file(rig.sim.path(image), 1 << 20)
    rig.sim.path("/vm/win/uefi-vars.fd").write_bytes(bytes(128 << 10))


def import_vm_bhyve(rig: CliRig, *more: str) -> subprocess.CompletedProcess[str]:
    return rig.cli("import", "vm-bhyve", "/vm", "--zfs-dataset", "zroot/vm", *more)


def commands(rig: CliRig, name: str) -> tuple[tuple[str, ...], ...]:
    proc = rig.cli("commands", name)
    assert proc.returncode == 0, proc.stderr
    return tuple(tuple(shlex.split(line)) for line in proc.stdout.splitlines())


def vm_run(
    rig: CliRig, name: str, taps: tuple[str, ...], iso: str | None = None
) -> tuple[tuple[str, ...], ...]:
    """The oracle's loader and bhyve argv; the daemon keeps grub's device.map in its state
    dir where vm-bhyve keeps it next to the .conf, and runs grub-bhyve from PATH."""
    facts = RunFacts(
        ds_path="/vm", vm_dir="/vm", zfs_dataset="zroot/vm", new_taps=taps, iso=iso,
        grub_bhyve="grub-bhyve",
    )  # fmt: skip
    run = vm_run_commands(name, guest_conf(name), system_conf(), facts)
    state = f"{rig.state_dir}/guests/{name}"
    loader = tuple(
        w.replace(f"/vm/{name}/device.map", f"{state}/device.map") for w in run.loader or ()
    )
    return (loader, run.bhyve) if run.loader else (run.bhyve,)


def test_the_three_guests_boot_after_import_as_vm_bhyve_boots_them(rig: CliRig) -> None:
    vm_bhyve_host(rig)
    proc = import_vm_bhyve(rig)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    # Taps are allocated by guest name, lowest free first (vm-bhyve's `ifconfig tap create`).
    assert commands(rig, "deb") == vm_run(rig, "deb", ("tap0", "tap1"))
    assert commands(rig, "fbsd") == vm_run(rig, "fbsd", ("tap2",))
    assert commands(rig, "win") == vm_run(rig, "win", ("tap3",))

    # `vm install win ISO`: the admin adds the install media; the disk is blank, so it boots.
    with open(rig.conf_dir / "win.toml", "a") as spec:
        spec.write(f'\n[install]\niso = "{WIN_ISO}"\n')
    assert commands(rig, "win") == vm_run(rig, "win", ("tap3",), iso=WIN_ISO)


def test_specs_are_written_0644_and_validate(rig: CliRig) -> None:
    vm_bhyve_host(rig)
    assert import_vm_bhyve(rig).returncode == 0

    for name in THREE:
        path = rig.conf_dir / f"{name}.toml"
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
        assert path.read_text().startswith(
            f"# Imported from vm-bhyve's /vm/{name}/{name}.conf by `bhyve-reconciler import"
        )
    proc = rig.cli("validate")
    assert proc.returncode == 0, proc.stdout
    assert sorted(line.split(": ")[1] for line in proc.stdout.splitlines()) == [
        "valid (guest deb)", "valid (guest fbsd)", "valid (guest win)",
    ]  # fmt: skip


def test_a_dry_run_writes_nothing(rig: CliRig) -> None:
    vm_bhyve_host(rig)
    config = rig.config.read_text()

    proc = import_vm_bhyve(rig, "--dry-run")

    assert proc.returncode == 0, proc.stdout
    assert "(dry run: nothing is written)" in proc.stdout
    assert "deb: converted, would be written to" in proc.stdout
    assert list(rig.conf_dir.iterdir()) == []
    assert rig.config.read_text() == config


def test_an_existing_spec_is_never_overwritten(rig: CliRig) -> None:
    vm_bhyve_host(rig)
    assert import_vm_bhyve(rig).returncode == 0
    again = import_vm_bhyve(rig)
    assert again.returncode == 0  # the same specs: imported before, nothing to do
    assert again.stdout.count("converted before") == 3

    edited = rig.conf_dir / "fbsd.toml"
    edited.write_text(edited.read_text().replace("cpus = 2", "cpus = 1"))
    proc = import_vm_bhyve(rig)

    assert proc.returncode == 2
    assert f"fbsd: converted, NOT written: {edited} exists (never overwritten)" in proc.stdout
    assert "cpus = 1" in edited.read_text()


def test_a_spec_that_would_clash_with_conf_d_is_not_written(rig: CliRig) -> None:
    vm_bhyve_host(rig)
    rig.write_spec("old", 'name = "old"\n[[disk]]\npath = "/vm/fbsd/disk0.img"\n')

    proc = import_vm_bhyve(rig)

    assert proc.returncode == 2
    assert "fbsd: converted, NOT written: it claims what a spec in conf.d holds" in proc.stdout
    assert "disk `/vm/fbsd/disk0.img` is already claimed by guest `old`" in proc.stdout
    assert not (rig.conf_dir / "fbsd.toml").exists()
    assert (rig.conf_dir / "deb.toml").exists()


def test_refused_and_dropped_keys_are_reported_with_their_reason(rig: CliRig) -> None:
    vm_bhyve_host(rig, (*THREE, "full"))

    proc = import_vm_bhyve(rig)

    assert proc.returncode == 2  # one guest was not converted
    out = proc.stdout
    assert "full: NOT converted" in out
    assert "    virt_random: the spec has no virtio-rnd device" in out
    assert "    vnc_password: the spec's framebuffer has no password" in out
    assert "    prestart: the daemon runs no prestart script" in out
    assert not (rig.conf_dir / "full.toml").exists()
    assert "WARNING switch backend is private" in out
    assert "1 not converted, 3 written" in out


def test_the_bridges_go_into_the_config_given_with_config(rig: CliRig) -> None:
    vm_bhyve_host(rig)
    before = rig.config.read_text()

    proc = import_vm_bhyve(rig)

    assert f"daemon config: added 1 bridge table(s) to {rig.config}" in proc.stdout
    text = rig.config.read_text()
    assert text.startswith(before)
    config, errors = parse_config(text, file=str(rig.config))
    assert errors == []
    # public's uplink igb0 is bridge0's already (the rig's config); backend needs its own.
    assert dict(config.bridges) == {"bridge0": ("igb0",), "bridge1": ("igb1.20",)}


def test_without_config_the_bridges_are_printed(tmp_path: Path, rig: CliRig) -> None:
    vm_bhyve_host(rig)
    argv = [sys.executable, "-m", "reconciler", "--simulate", "--sim-dir", str(tmp_path),
            "--conf-dir", str(rig.conf_dir), "import", "vm-bhyve", "/vm",
            "--zfs-dataset", "zroot/vm", "--bridge", "public=bridge5"]  # fmt: skip

    proc = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path, check=False)

    assert proc.returncode == 0, proc.stderr
    assert '# vm-bhyve switch public\n  [bridges.bridge5]\n  members = ["igb0"]' in proc.stdout
    assert 'bridge = "bridge5"' in (rig.conf_dir / "fbsd.toml").read_text()


def test_every_template_shape_imports_and_validates(rig: CliRig) -> None:
    for conf in TEMPLATES.glob("*.conf"):
        guest = rig.sim.path(f"/vm/{conf.stem}")
        guest.mkdir(parents=True)
        shutil.copy(conf, guest / f"{conf.stem}.conf")

    proc = import_vm_bhyve(rig)

    assert proc.returncode == 0, proc.stdout
    written = sorted(p.stem for p in rig.conf_dir.glob("*.toml"))
    assert written == sorted(p.stem for p in TEMPLATES.glob("*.conf"))
    assert rig.cli("validate").returncode == 0


@pytest.mark.parametrize("vm_dir", ["/nowhere", "/"])
def test_a_directory_without_guests_is_an_error(rig: CliRig, vm_dir: str) -> None:
    proc = rig.cli("import", "vm-bhyve", vm_dir)
    assert proc.returncode == 1
    assert proc.stdout == ""
