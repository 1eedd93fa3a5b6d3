"""The spec keys an imported guest needs: `uuid`, `[topology]`, `layout`/`[vm_bhyve]`,
`[uefi] vars_file`, `[graphics] wait_install`, ahci-cd disks. Each is read, validated with a
message naming the key, written back, and reaches bhyve's argv in both layouts; vmrun.sh's
layout stays the default."""

from __future__ import annotations

import pytest
import tomli_w

from reconciler.bhyve import boot_commands
from reconciler.guestfile import guest_to_toml, parse_guest_text
from reconciler.plan import PlanContext, state_files, uefi_vars_path
from reconciler.spec import GuestSpec

BASE = '\n[[disk]]\npath = "/vm/g/disk0.img"\n'


def parse(text: str) -> tuple[GuestSpec | None, list[str]]:
    """A UEFI guest with one disk and the keys in `text` (top-level keys first)."""
    spec, errors = parse_guest_text('loader = "uefi"\n' + text, file="/c/g.toml", stem="g")
    return spec, [f"{e.key}: {e.message}" for e in errors]


def bhyve_argv(spec: GuestSpec, *, install: bool = False) -> tuple[str, ...]:
    return boot_commands(
        spec, taps=[], install=install, guest_dir="/state/g", uefi_vars="/state/g/vars.fd"
    ).bhyve


def test_uuid_and_topology_reach_bhyve_in_vmruns_layout() -> None:
    spec, errors = parse(
        'cpus = 4\nuuid = "8E3F4B1C-61b6-11ef-9a0c-002590f1a2b3"\n'
        "[topology]\nsockets = 1\ncores = 2\nthreads = 2\n" + BASE
    )
    assert errors == []
    assert spec is not None
    argv = bhyve_argv(spec)
    assert argv[:10] == (
        "bhyve", "-c", "4,sockets=1,cores=2,threads=2", "-m", "512M", "-H", "-A", "-P",
        "-U", "8E3F4B1C-61b6-11ef-9a0c-002590f1a2b3",  # as written: the guest sees this one
    )  # fmt: skip
    assert spec.layout == "vmrun"
    assert "-s" in argv and "0:0,hostbridge" in argv  # vmrun.sh's slots, unchanged


def test_a_partial_topology_leaves_the_rest_to_bhyve() -> None:
    spec, errors = parse("cpus = 4\n[topology]\ncores = 4\nsockets = 1\n" + BASE)
    assert errors == []
    assert spec is not None and spec.cpu_argument == "4,sockets=1,cores=4"


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ('uuid = "not-a-uuid"\n', 'uuid: expected a UUID like "8e3f4b1c-61b6-11ef-9a0c-'
         '002590f1a2b3", got "not-a-uuid"'),
        # bhyverun.c calc_topology: sockets defaults to the vCPU count, so cores=2 with
        # cpus=4 is 8 vCPUs and bhyve exits "Topology ... does not match 4 vCPUs".
        ("cpus = 4\n[topology]\ncores = 2\n", "topology: 4 sockets x 2 cores x 1 threads is 8 "
         "vCPUs, but cpus = 4: bhyve refuses a topology that does not match"),
        ("cpus = 2\n[topology]\nsockets = 1\ncores = 1\nthreads = 1\n", "topology: 1 sockets x "
         "1 cores x 1 threads is 1 vCPUs, but cpus = 2: bhyve refuses a topology that does not "
         "match"),
        ('[vm_bhyve]\nstart_slot = 5\n', 'vm_bhyve: only valid with layout = "vm-bhyve" (this '
         'guest uses "vmrun")'),
        ('layout = "vm-bhyve"\n[vm_bhyve]\nstart_slot = 31\n', "vm_bhyve.start_slot: must be "
         "between 1 and 30, got 31"),
        ('layout = "vm-bhyve"\n[vm_bhyve]\ngrub_run_dir = "-x"\n', "vm_bhyve.grub_run_dir: must "
         "not start with `-`: grub-bhyve would read it as an option"),
        ('[uefi]\nvars_file = "/vm/g/uefi-vars.fd"\n', "uefi.vars_file: only valid with vars = "
         "true (it says where they are kept)"),
        ('layout = "vmrun-bhyve"\n', 'layout: expected one of "vmrun", "vm-bhyve"; did you mean '
         '"vm-bhyve"?'),
    ],
)  # fmt: skip
def test_wrong_values_are_refused_by_key(text: str, error: str) -> None:
    spec, errors = parse(text + BASE)
    assert spec is None
    assert errors == [error]


def test_an_empty_topology_is_bhyves_default() -> None:
    spec, errors = parse("cpus = 2\n[topology]\n" + BASE)
    assert errors == []
    assert spec is not None and spec.topology is None and spec.cpu_argument == "2"


def test_new_keys_round_trip_through_tomli_w() -> None:
    text = (
        'cpus = 2\nuuid = "8e3f4b1c-61b6-11ef-9a0c-002590f1a2b3"\nlayout = "vm-bhyve"\n'
        "[topology]\nsockets = 2\n"
        "[vm_bhyve]\nstart_slot = 5\ninstall_slot = 2\nahci_device_limit = 8\n"
        '[uefi]\nvars = true\nvars_file = "/vm/g/uefi-vars.fd"\n'
        "[graphics]\nwait_install = true\n" + BASE + 'emulation = "ahci-cd"\n'
    )
    spec, errors = parse(text)
    assert errors == [] and spec is not None
    again, problems = parse_guest_text(
        tomli_w.dumps(guest_to_toml(spec)), file="/c/g.toml", stem="g"
    )
    assert problems == []
    assert again is not None and again.boot_key == spec.boot_key


def test_vars_file_is_the_guests_store_and_never_a_daemon_copy() -> None:
    spec, _ = parse('[uefi]\nvars = true\nvars_file = "/vm/g/uefi-vars.fd"\n' + BASE)
    own, _ = parse("[uefi]\nvars = true\n" + BASE.replace("g/", "h/"))
    assert spec is not None and own is not None
    ctx = PlanContext(guests_dir="/state/guests")
    assert uefi_vars_path(ctx, spec) == "/vm/g/uefi-vars.fd"
    assert uefi_vars_path(ctx, own) == "/state/guests/g/BHYVE_UEFI_VARS.fd"
    # Only the daemon's own copy is something it checks for and creates.
    assert state_files({"g": spec, "h": own}, ctx) == ["/state/guests/g/BHYVE_UEFI_VARS.fd"]


@pytest.mark.parametrize("layout", ["vmrun", "vm-bhyve"])
def test_wait_install_waits_only_while_the_install_media_boots(layout: str) -> None:
    spec, errors = parse(
        f'layout = "{layout}"\n[install]\niso = "/iso/x.iso"\n'
        '[graphics]\nlisten = "0.0.0.0:5901"\nwait_install = true\n' + BASE
    )
    assert errors == [] and spec is not None
    fbuf = [a for a in bhyve_argv(spec, install=True) if "fbuf" in a]
    assert len(fbuf) == 1 and fbuf[0].endswith(",wait")
    fbuf = [a for a in bhyve_argv(spec, install=False) if "fbuf" in a]
    assert len(fbuf) == 1 and not fbuf[0].endswith(",wait")


def test_an_ahci_cd_disk_is_a_cd_in_both_layouts() -> None:
    text = (
        BASE + 'emulation = "ahci-hd"\n\n[[disk]]\npath = "/vm/g/seed.iso"\nemulation = "ahci-cd"\n'
    )
    vmrun, _ = parse(text)
    vm_bhyve, _ = parse('layout = "vm-bhyve"\n[vm_bhyve]\nahci_device_limit = 2\n' + text)
    assert vmrun is not None and vm_bhyve is not None
    assert "3:0,ahci-cd,/vm/g/seed.iso" in bhyve_argv(vmrun)  # vmrun.sh: after disk0 at 2
    # With a shared controller, vm-run writes `cd:` for an ahci-cd disk.
    assert "0:4:0,ahci,hd:/vm/g/disk0.img,cd:/vm/g/seed.iso" in bhyve_argv(vm_bhyve)
