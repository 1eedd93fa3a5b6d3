"""`layout = "vm-bhyve"` (reconciler/bhyve_layout.py) against the vm-run model
(reconciler/vmbhyve/run.py), two readings of lib/vm-run written apart: an imported guest's
command lines are the ones vm-bhyve would run for the same `.conf`, argv for argv.

The only differences allowed are where the daemon keeps its own files (grub's device.map and
grub.cfg live in its state dir, not next to the .conf) and grub-bhyve's argv[0] (vm-bhyve runs
`which grub-bhyve`'s full path, the daemon the name on PATH); the oracle is given the same
directory and name, so every other word must match.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from vmbhyve_fixtures import TEMPLATES, guest_conf, system_conf, template_conf

from reconciler.bhyve import BootCommands, boot_commands
from reconciler.errors import SpecError
from reconciler.spec import GuestSpec, Install
from reconciler.vmbhyve import ConfFile, RunFacts, VmRunCommands, parse_conf, vm_run_commands
from reconciler.vmbhyve.datastore import GuestFile, import_datastore

ISO = "/vm/.iso/install.iso"


def imported(name: str, conf: ConfFile) -> GuestSpec:
    result = import_datastore("/vm", [GuestFile(name, conf)], system_conf(), zfs_dataset="zroot/vm")
    (guest,) = result.guests
    assert guest.refused == (), guest.refused
    assert guest.spec is not None
    return guest.spec


def both(
    name: str, conf: ConfFile, taps: tuple[str, ...], *, iso: str | None = None
) -> tuple[BootCommands, VmRunCommands]:
    """Our boot (the spec as imported, with [install] when installing) and vm-run's."""
    spec = imported(name, conf)
    if iso is not None:
        spec = replace(spec, install=Install(iso=iso))
    ours = boot_commands(
        spec, taps=taps, install=iso is not None, guest_dir=f"/vm/{name}",
        uefi_vars=spec.uefi.vars_file,
    )  # fmt: skip
    port = int(spec.graphics.listen.rsplit(":", 1)[1]) if spec.graphics else None
    facts = RunFacts(
        ds_path="/vm", vm_dir="/vm", zfs_dataset="zroot/vm", new_taps=taps, iso=iso,
        grub_bhyve="grub-bhyve", vnc_port=port,
    )  # fmt: skip
    return ours, vm_run_commands(name, conf, system_conf(), facts)


def assert_same(ours: BootCommands, theirs: VmRunCommands) -> None:
    assert ours.bhyve == theirs.bhyve
    assert ours.loader == theirs.loader
    assert ours.files == theirs.files


@pytest.mark.parametrize(
    ("name", "taps", "iso"),
    [
        ("fbsd", ("tap0",), None),
        ("fbsd", ("tap0",), ISO),
        ("deb", ("tap1", "tap2"), None),
        ("deb", ("tap1", "tap2"), ISO),
        ("win", ("tap3",), None),
        ("win", ("tap3",), "/vm/.iso/Win11_24H2.iso"),
    ],
)
def test_the_three_guests_boot_as_vm_bhyve_boots_them(
    name: str, taps: tuple[str, ...], iso: str | None
) -> None:
    ours, theirs = both(name, guest_conf(name), taps, iso=iso)
    assert_same(ours, theirs)
    assert ours.install is (iso is not None)


# Where an imported template's argv differs from vm-run's, and why the guest cannot tell.
TEMPLATE_DIFFERENCES: dict[str, tuple[str, str]] = {
    # bhyve_options="-w" is carried as ignore_msrs, which vm-run's `-AHPw` already sets.
    "openbsd": ("-w", ""),
    "resflash": ("-w", ""),
    # memory="512MB": the spec's sizes take no `B`; bhyve and grub-bhyve read the same size.
    "legacy-gentoo": ("512MB", "512M"),
}


@pytest.mark.parametrize("template", sorted(p.stem for p in TEMPLATES.glob("*.conf")))
def test_every_sample_template_boots_as_vm_bhyve_boots_it(template: str) -> None:
    ours, theirs = both(template, template_conf(template), ("tap0",))
    assert ours.loader is not None or theirs.loader is None
    if template not in TEMPLATE_DIFFERENCES:
        assert_same(ours, theirs)
        return
    old, new = TEMPLATE_DIFFERENCES[template]

    def fixed(argv: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if argv is None:
            return None
        return tuple(new if word == old else word for word in argv if new or word != old)

    assert ours.bhyve != theirs.bhyve  # the difference is real, and it is the only one
    assert ours.bhyve == fixed(theirs.bhyve)
    assert ours.loader == fixed(theirs.loader)
    assert ours.files == theirs.files


def test_the_install_media_may_not_take_a_devices_slot() -> None:
    # start_slot=3 puts disk0 in install_slot 3: bhyve would refuse the second device there.
    conf = parse_conf(
        'loader="bhyveload"\ncpu=1\nmemory=1G\nstart_slot="3"\n'
        'disk0_type="virtio-blk"\ndisk0_name="disk0.img"\n'
    )
    spec = replace(imported("g", conf), install=Install(iso=ISO))
    with pytest.raises(SpecError, match="slot 3 already holds a device"):
        boot_commands(spec, taps=(), install=True, guest_dir="/vm/g")


# -- generated guests --------------------------------------------------------------------------

DISK_TYPES = ("virtio-blk", "ahci-hd", "ahci-cd", "nvme")
PASSTHRU = ("2/0/0", "2/0/1", "3/0/0", "4/0/0", "4/0/1")


@st.composite
def guests(draw: st.DrawFn) -> str:
    """A `.conf` with only what the importer carries over, in shapes that move vm-run's
    cursor every way it moves: functions past 7, ahci controllers filling and left over,
    slots past 30 onto bus 1, passthru host slots."""
    loader = draw(st.sampled_from(["bhyveload", "grub", "uefi", "uefi-csm"]))
    lines = [f'loader="{loader}"', f"cpu={draw(st.integers(1, 8))}", "memory=2G",
             'uuid="c0ffee00-61b7-11ef-9a0c-002590f1a2b3"']  # fmt: skip
    optional = {
        "start_slot": st.integers(4, 30).map(str),
        "ahci_device_limit": st.integers(1, 9).map(str),
        "wired_memory": st.just("yes"),
        "utctime": st.just("no"),
        "uefi_vars": st.just("yes"),
        "graphics": st.just("yes"),
        "xhci_mouse": st.just("yes"),
        "graphics_res": st.just("800x600"),
        "graphics_wait": st.sampled_from(["yes", "no", "auto"]),
        "grub_run_partition": st.sampled_from(["1", "msdos2", "gpt3"]),
        "grub_run_dir": st.just("/boot/grub2"),
        "loader_timeout": st.just("7"),
    }
    for key, values in optional.items():
        if draw(st.booleans()):
            lines.append(f'{key}="{draw(values)}"')
    if loader.startswith("uefi") and "graphics=" in "\n".join(lines):
        lines.append('graphics_port="5905"')
    elif "xhci_mouse=" in "\n".join(lines):
        lines.remove('xhci_mouse="yes"')  # a tablet without a framebuffer has no spec key
    for num in range(draw(st.integers(1, 12))):
        lines.append(f'disk{num}_type="{draw(st.sampled_from(DISK_TYPES))}"')
        lines.append(f'disk{num}_name="disk{num}"')
        lines.append(f'disk{num}_dev="{draw(st.sampled_from(["file", "zvol", "sparse-zvol"]))}"')
        if draw(st.booleans()):
            lines.append(f'disk{num}_opts="{draw(st.sampled_from(["nocache", "ro,direct"]))}"')
    for num in range(draw(st.integers(0, 10))):
        kind = draw(st.sampled_from(["virtio-net", "e1000"]))
        lines += [
            f'network{num}_type="{kind}"',
            f'network{num}_switch="public"',
            f'network{num}_mac="58:9c:fc:00:01:{num:02x}"',
        ]
    devices = draw(st.lists(st.sampled_from(PASSTHRU), unique=True, max_size=4))
    lines += [f'passthru{num}="{device}"' for num, device in enumerate(devices)]
    return "\n".join(lines) + "\n"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(guests(), st.booleans())
def test_generated_guests_boot_as_vm_bhyve_boots_them(text: str, installing: bool) -> None:
    conf = parse_conf(text)
    nics = sum(s.key.endswith("_switch") for s in conf.settings)
    taps = tuple(f"tap{n}" for n in range(nics))
    try:
        ours, theirs = both("gen", conf, taps, iso=ISO if installing else None)
    except SpecError:
        assume(False)  # the install media's slot is taken: refused, vm-run's bhyve would fail
        raise
    assert_same(ours, theirs)
