"""The repo's example conf.d (FreeBSD, grub Linux, UEFI with a vars store, zvol, a cloud image)
converges in one `apply`: the next `plan` has nothing to do."""

from __future__ import annotations

import re
from pathlib import Path

from e2e_helpers import OBSERVE, CliRig

REPO_CONF_D = Path(__file__).resolve().parents[2] / "conf.d"
ZFS_LIST = ["zfs", "list", "-H", "-p", "-t", "volume", "-o", "name,volsize"]


def test_the_example_guests_converge_in_one_apply(rig: CliRig) -> None:
    for example in sorted(REPO_CONF_D.glob("*.toml")):
        # Stopped: this is about the host side; starting guests belongs to the daemon.
        text = re.sub(r"^(name = .*)$", r'\1\nstate = "stopped"', example.read_text(), count=1,
                      flags=re.M)  # fmt: skip
        assert 'state = "stopped"' in text, example
        rig.write_spec(example.stem, text)

        for source in re.findall(r'^source = "(/[^"]+)"$', text, flags=re.M):
            image = rig.sim.path(source)  # a small raw image for the cloud example's disk
            image.parent.mkdir(parents=True, exist_ok=True)
            image.write_bytes(bytes(510) + b"\x55\xaa")

    first = rig.cli("apply")

    assert first.returncode == 0, first.stdout + first.stderr
    template = rig.sim.path("/usr/local/share/uefi-firmware/BHYVE_UEFI_VARS.fd")
    vars_copy = rig.state_dir / "guests/uefiguest/BHYVE_UEFI_VARS.fd"
    assert vars_copy.read_bytes() == template.read_bytes()
    seed = rig.state_dir / "guests/web1/seed.iso"
    assert rig.ledger().files == {str(vars_copy): "uefiguest", str(seed): "web1"}
    assert rig.sim.path("/vm/web1/disk0.img").stat().st_size == 20 << 30
    assert rig.sim.zvols() == {"zroot/vm/linuxdisk0": 16 << 30}

    plan, ran = rig.logged("plan")

    assert (plan.returncode, plan.stdout) == (0, "converged: nothing to do\n"), plan.stderr
    assert ran == [*OBSERVE, ZFS_LIST]
