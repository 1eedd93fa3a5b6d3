"""Properties of every command line a valid spec produces: PCI slots are unique, the guest's
name is the last argument, and no value can be read by getopt as a new option."""

from __future__ import annotations

import re
from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.bhyve import BootCommands, boot_commands, pci_slots
from reconciler.spec import Disk, Graphics, Grub, GuestSpec, Install, Loader, Nic, Uefi

GUEST_DIR = "/var/db/bhyve-reconciler/guests/x"

# A guest, the tap resolved for each of its NICs, install mode, and the UEFI vars file.
Case = tuple[GuestSpec, list[str], bool, str | None]

ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def _word(first: str, rest: str, max_rest: int) -> st.SearchStrategy[str]:
    return st.builds(str.__add__, st.sampled_from(first), st.text(alphabet=rest, max_size=max_rest))


# Built from plain text strategies: from_regex is an order of magnitude slower.
names = _word(ALNUM, ALNUM + "_.-", 30)
path_segments = st.text(alphabet=ALNUM + "_.-", min_size=1, max_size=12)
paths = st.lists(path_segments, min_size=1, max_size=4).map(lambda parts: "/" + "/".join(parts))
zvols = st.builds(
    "/".join,
    st.tuples(
        _word("abcdefghijklmnopqrstuvwxyz", "abcdefghijklmnopqrstuvwxyz0123456789_", 8),
        st.text(alphabet=ALNUM + "_.-", min_size=1, max_size=8),
    ),
)
block_options = st.lists(
    st.sampled_from(
        ["nocache", "direct", "ro", "nodelete", "sectorsize=512", "sectorsize=4096/512"]
    ),
    max_size=3,
    unique=True,
).map(tuple)
disks = st.builds(
    Disk,
    path=paths,
    emulation=st.sampled_from(["virtio-blk", "ahci-hd", "nvme"]),
    options=block_options,
) | st.builds(
    Disk,
    zvol=zvols,
    emulation=st.sampled_from(["virtio-blk", "ahci-hd", "nvme"]),
    options=block_options,
)
macs = st.lists(st.integers(0, 255), min_size=6, max_size=6).map(
    lambda octets: ":".join(f"{o:02x}" for o in octets)
)
nics = st.builds(
    Nic,
    tap=st.none() | st.integers(0, 999).map(lambda n: f"tap{n}"),
    bridge=st.none() | st.just("bridge0"),
    emulation=st.sampled_from(["virtio-net", "e1000"]),
    mac=st.none() | macs,
)
bsf = st.tuples(st.integers(0, 255), st.integers(0, 31), st.integers(0, 7)).map(
    lambda t: f"{t[0]}/{t[1]}/{t[2]}"
)
graphics = st.builds(
    Graphics,
    listen=st.tuples(
        st.sampled_from(["127.0.0.1", "0.0.0.0", "192.0.2.7"]), st.integers(1, 65535)
    ).map(lambda hp: f"{hp[0]}:{hp[1]}"),
    width=st.integers(640, 3840),
    height=st.integers(480, 2160),
    wait=st.booleans(),
    tablet=st.booleans(),
)
loader_env = st.lists(
    st.tuples(
        _word("abcdefghijklmnopqrstuvwxyz_", "abcdefghijklmnopqrstuvwxyz0123456789_.", 15),
        st.text(alphabet=ALNUM + "_./:", max_size=16),
    ),
    max_size=3,
).map(tuple)


@st.composite
def guests(draw: st.DrawFn) -> Case:
    loader: Loader = draw(st.sampled_from(["bhyveload", "grub", "uefi"]))
    guest_nics = tuple(draw(st.lists(nics, min_size=1, max_size=4)))
    install = draw(st.none() | st.builds(Install, iso=paths, force=st.booleans()))
    uefi = draw(st.builds(Uefi, firmware=paths, vars=st.booleans()))
    guest = GuestSpec(
        name=draw(names),
        cpus=draw(st.integers(1, 16)),
        memory=draw(st.sampled_from(["512M", "1024M", "1G", "4G", "16384M"])),
        loader=loader,
        console=draw(st.just("nmdm") | st.integers(0, 99).map(lambda n: f"/dev/nmdm{n}A")),
        utc_clock=draw(st.booleans()),
        ignore_msrs=draw(st.booleans()),
        wire_memory=draw(st.booleans()),
        passthru=tuple(draw(st.lists(bsf, max_size=2))),
        loader_env=draw(loader_env),
        install=install,
        disks=tuple(draw(st.lists(disks, min_size=1, max_size=6))),
        nics=guest_nics,
        uefi=uefi,
        graphics=draw(st.none() | graphics) if loader == "uefi" else None,
        grub=draw(
            st.builds(
                Grub,
                root=st.none() | st.sampled_from(["hd0,msdos1", "hd0,gpt2", "cd0", "host"]),
                config=st.none() | st.just("linux (hd0,msdos1)/vmlinuz\nboot"),
            )
        ),
    )
    # The caller resolves a tap for every NIC: the spec's own, else an allocated one.
    taps = [nic.tap or f"tap{100 + i}" for i, nic in enumerate(guest_nics)]
    install_mode = install is not None and draw(st.booleans())
    vars_file = f"{GUEST_DIR}/BHYVE_UEFI_VARS.fd" if uefi.vars else None
    return guest, taps, install_mode, vars_file


def _commands(case: Case) -> BootCommands:
    guest, taps, install, vars_file = case
    return boot_commands(
        guest, taps=taps, install=install, guest_dir=GUEST_DIR, uefi_vars=vars_file
    )


BHYVE_FLAGS = ({"-c", "-m", "-s", "-l"}, {"-H", "-A", "-P", "-u", "-w", "-S"})
LOADER_FLAGS = {
    "bhyveload": ({"-c", "-m", "-d", "-e"}, {"-S"}),
    "grub-bhyve": ({"-c", "-m", "-r", "-M", "-d"}, {"-S"}),
}


def _getopt(
    argv: Sequence[str], with_value: set[str], without_value: set[str]
) -> tuple[list[tuple[str, str | None]], list[str]]:
    """Split argv as getopt(3) would, failing on unknown flags and on values that look like
    flags; returns the options and the positional arguments."""
    options: list[tuple[str, str | None]] = []
    i = 1
    while i < len(argv) and argv[i].startswith("-"):
        flag = argv[i]
        assert flag in with_value | without_value, f"unknown flag {flag!r} in {argv}"
        if flag in with_value:
            assert i + 1 < len(argv), f"{flag} without a value in {argv}"
            value = argv[i + 1]
            assert not value.startswith("-"), f"{flag} value {value!r} reads as an option"
            options.append((flag, value))
            i += 2
        else:
            options.append((flag, None))
            i += 1
    return options, list(argv[i:])


SLOT_ARG = re.compile(r"(?P<slot>\d+)(:(?P<function>\d+))?,[a-z][a-z0-9-]*(,\S*)?")


def _pci_slots_of(bhyve: Sequence[str]) -> list[int]:
    options, _ = _getopt(bhyve, *BHYVE_FLAGS)
    slots = []
    for flag, value in options:
        if flag != "-s":
            continue
        assert value is not None
        match = SLOT_ARG.fullmatch(value)
        assert match is not None, f"malformed -s {value!r}"
        function = match.group("function")
        assert function is None or 0 <= int(function) <= 7
        slots.append(int(match.group("slot")))
    return slots


# Each example costs ~10 ms to draw, so the properties share examples in three tests.


@settings(max_examples=150, deadline=None)
@given(guests())
def test_pci_slots_are_unique_and_match_the_layout(case: Case) -> None:
    guest, _, install, _ = case
    slots = _pci_slots_of(_commands(case).bhyve)
    assert len(slots) == len(set(slots)), f"shared slot in {sorted(slots)}"
    assert all(0 <= slot <= 31 for slot in slots)
    assert sorted(slots) == [slot for slot, _ in pci_slots(guest, install=install)]


@settings(max_examples=150, deadline=None)
@given(guests())
def test_name_is_the_only_operand_and_no_value_reads_as_an_option(case: Case) -> None:
    guest = case[0]
    commands = _commands(case)
    assert commands.bhyve[0] == "bhyve"
    bhyve_options, operands = _getopt(commands.bhyve, *BHYVE_FLAGS)
    assert operands == [guest.name]
    for argv in (commands.bhyve, commands.loader or ()):
        for arg in argv:
            assert arg and not re.search(r"\s", arg), f"{arg!r} in {argv}"

    # Loader and bhyve must agree on memory and wiring, or bhyve refuses the VM.
    assert ("-m", guest.memory) in bhyve_options
    assert (("-S", None) in bhyve_options) == (guest.wire_memory or bool(guest.passthru))
    if guest.loader == "uefi":
        assert commands.loader is None
        return
    assert commands.loader is not None
    tool = commands.loader[0]
    assert tool == {"bhyveload": "bhyveload", "grub": "grub-bhyve"}[guest.loader]
    loader_options, operands = _getopt(commands.loader, *LOADER_FLAGS[tool])
    assert operands == [guest.name]
    assert ("-M" if tool == "grub-bhyve" else "-m", guest.memory) in loader_options
    assert (("-S", None) in loader_options) == (("-S", None) in bhyve_options)


@settings(max_examples=75, deadline=None)
@given(guests())
def test_grub_device_map_lists_every_disk_then_the_iso(case: Case) -> None:
    guest = case[0]
    commands = _commands(case)
    if guest.loader != "grub":
        assert commands.files == ()
        return
    files = dict(commands.files)
    lines = files[f"{GUEST_DIR}/device.map"].splitlines()
    expected = [f"(hd{i}) {disk.device}" for i, disk in enumerate(guest.disks)]
    if guest.install is not None:
        expected.append(f"(cd0) {guest.install.iso}")
    assert lines == expected
    assert (f"{GUEST_DIR}/grub.cfg" in files) == (guest.grub.config is not None)
