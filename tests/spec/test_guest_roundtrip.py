"""A valid spec written as a guest file reads back as the same spec (what state_dir keeps)."""

from __future__ import annotations

import re
from dataclasses import replace

import tomli_w
from hypothesis import given
from hypothesis import strategies as st

from reconciler.guestfile import guest_to_toml, parse_guest_text
from reconciler.spec import (
    DISK_EMULATIONS,
    LOADERS,
    NIC_EMULATIONS,
    ON_CHANGES,
    RESTART_POLICIES,
    STATES,
    Disk,
    Graphics,
    Grub,
    GuestSpec,
    Install,
    Lifecycle,
    Nic,
    Uefi,
)
from reconciler.valuerules import NAME_RE


def regex(pattern: str) -> st.SearchStrategy[str]:
    return st.from_regex(re.compile(pattern), fullmatch=True)


COMPONENT = regex(r"[A-Za-z0-9_é-][A-Za-z0-9_.é-]{0,8}").filter(lambda c: c not in (".", ".."))
PATHS = st.lists(COMPONENT, min_size=1, max_size=4).map(lambda parts: "/" + "/".join(parts))
ZVOL_PART = regex(r"[A-Za-z0-9_.:][A-Za-z0-9_.:-]{0,8}").filter(lambda c: c not in (".", ".."))
ZVOLS = st.builds(
    lambda pool, rest: "/".join([pool, *rest]),
    regex(r"[A-Za-z][A-Za-z0-9_]{0,6}"),
    st.lists(ZVOL_PART, min_size=1, max_size=3),
)
SIZES = st.builds(
    lambda n, unit: n << unit, st.integers(1, 4096), st.sampled_from([10, 20, 30, 40])
)
SECTORS = st.sampled_from([512, 4096]).flatmap(
    lambda n: st.sampled_from([f"sectorsize={n}", f"sectorsize={n}/{max(n, 4096)}"])
)
OPTIONS = st.lists(
    st.sampled_from(["nocache", "direct", "ro", "nodelete"]) | SECTORS,
    max_size=3,
    unique_by=lambda o: o.split("=")[0],
).map(tuple)
# Text that may reach an argv: printable, and ASCII spaces only.
ARGV_TEXT = st.text(st.characters(categories=["L", "N", "P", "S"]) | st.just(" "), max_size=12)


@st.composite
def disks(draw: st.DrawFn) -> tuple[Disk, ...]:
    out: dict[str, Disk] = {}
    for _ in range(draw(st.integers(1, 4))):
        source = draw(st.sampled_from(["path", "zvol"]))
        disk = Disk(
            path=draw(PATHS) if source == "path" else None,
            zvol=draw(ZVOLS) if source == "zvol" else None,
            size=draw(st.none() | SIZES),
            emulation=draw(st.sampled_from(DISK_EMULATIONS)),
            options=draw(OPTIONS),
        )
        out.setdefault(disk.device, disk)
    return tuple(out.values())


MACS = st.lists(st.integers(0, 255), min_size=6, max_size=6).map(
    lambda b: ":".join(f"{x:02x}" for x in [b[0] & 0xFE | 0x02, *b[1:]])
)


@st.composite
def nics(draw: st.DrawFn) -> tuple[Nic, ...]:
    taps = draw(st.lists(st.integers(0, 99999), max_size=3, unique=True))
    macs = draw(st.lists(MACS, max_size=3, unique=True))
    out = []
    for index in range(draw(st.integers(0, 3))):
        out.append(
            Nic(
                tap=f"tap{taps[index]}" if index < len(taps) and draw(st.booleans()) else None,
                bridge=draw(st.none() | regex(r"[a-z][a-z0-9_.]{0,14}")),
                emulation=draw(st.sampled_from(NIC_EMULATIONS)),
                mac=macs[index] if index < len(macs) and draw(st.booleans()) else None,
            )
        )
    return tuple(out)


PASSTHRU = st.lists(
    st.tuples(st.integers(0, 255), st.integers(0, 31), st.integers(0, 7)), max_size=3, unique=True
).map(lambda devices: tuple(f"{b}/{s}/{f}" for b, s, f in devices))
LIFECYCLES = st.builds(
    Lifecycle,
    state=st.sampled_from(STATES),
    order=st.integers(-(2**63), 2**63 - 1),
    restart=st.sampled_from(RESTART_POLICIES),
    on_change=st.sampled_from(ON_CHANGES),
    stop_timeout=st.none() | st.floats(min_value=0, max_value=3600, exclude_min=True),
)
LISTEN = st.builds(
    lambda host, port: f"{host}:{port}",
    st.sampled_from(["127.0.0.1", "0.0.0.0", "vnc.example.org", "localhost"]),
    st.integers(1, 65535),
)


@st.composite
def guests(draw: st.DrawFn) -> GuestSpec:
    loader = draw(st.sampled_from(LOADERS))
    return GuestSpec(
        name=draw(st.from_regex(NAME_RE, fullmatch=True)),
        cpus=draw(st.integers(1, 256)),
        memory=draw(st.builds(lambda n, u: f"{n}{u}", st.integers(1, 4096), st.sampled_from("MG"))),
        loader=loader,
        console=draw(st.sampled_from(["nmdm", "/dev/nmdm7A", "/dev/ttyu0"]) | PATHS),
        utc_clock=draw(st.booleans()),
        ignore_msrs=draw(st.booleans()),
        wire_memory=draw(st.booleans()),
        passthru=draw(PASSTHRU),
        loader_env=tuple(
            draw(
                st.dictionaries(regex(r"[A-Za-z_][A-Za-z0-9_.]{0,10}"), ARGV_TEXT, max_size=3)
            ).items()
        )
        if loader == "bhyveload"
        else (),
        install=draw(st.none() | st.builds(Install, iso=PATHS, force=st.booleans())),
        disks=draw(disks()),
        nics=draw(nics()),
        uefi=draw(st.builds(Uefi, firmware=PATHS, vars=st.booleans()))
        if loader == "uefi"
        else Uefi(),
        graphics=draw(
            st.none()
            | st.builds(
                Graphics,
                listen=LISTEN,
                width=st.integers(640, 3840),
                height=st.integers(480, 2160),
                wait=st.booleans(),
                tablet=st.booleans(),
            )
        )
        if loader == "uefi"
        else None,
        grub=draw(
            st.builds(
                Grub,
                root=st.none() | regex(r"[a-z0-9(][a-z0-9(),]{0,10}"),
                config=st.none()
                | st.text(st.characters(exclude_categories=["Cc", "Cs"]) | st.sampled_from("\n\t")),
            )
        )
        if loader == "grub"
        else Grub(),
        lifecycle=draw(LIFECYCLES),
    )


@given(guests())
def test_a_written_spec_reads_back_the_same(spec: GuestSpec) -> None:
    text = tomli_w.dumps(guest_to_toml(spec))
    parsed, errors = parse_guest_text(text, file="/state/web.toml", stem="whatever")
    assert errors == [], text
    assert parsed == replace(spec, source="/state/web.toml")


def test_only_keys_that_differ_from_their_defaults_are_written() -> None:
    spec = GuestSpec(name="web", disks=(Disk(path="/vm/web.img"),))
    assert guest_to_toml(spec) == {"name": "web", "disk": [{"path": "/vm/web.img"}]}
    stopped = replace(spec, lifecycle=Lifecycle(state="stopped", stop_timeout=90.0))
    assert guest_to_toml(stopped) == {
        "name": "web",
        "state": "stopped",
        "stop_timeout": "1m30s",
        "disk": [{"path": "/vm/web.img"}],
    }


def test_a_default_framebuffer_is_still_written() -> None:
    spec = GuestSpec(name="w", loader="uefi", graphics=Graphics(), disks=(Disk(path="/vm/w"),))
    assert guest_to_toml(spec)["graphics"] == {}


def test_sizes_are_written_in_the_largest_exact_unit() -> None:
    spec = GuestSpec(name="w", disks=(Disk(zvol="tank/w", size=1536 << 20),))
    assert guest_to_toml(spec)["disk"] == [{"zvol": "tank/w", "size": "1536M"}]
