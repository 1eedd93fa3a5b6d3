"""Placement (issue 15): which guests this host runs, from their `host` key and the daemon
config's `placement`; and the keys themselves, as files and configs spell them."""

from __future__ import annotations

from dataclasses import replace

import tomli_w
from hypothesis import given
from hypothesis import strategies as st

from reconciler.config import parse_config
from reconciler.conflicts import Candidate, check_conflicts
from reconciler.guestfile import guest_to_toml, parse_guest_text
from reconciler.placement import PLACEMENTS, PlacementMode, place
from reconciler.spec import Disk, GuestSpec, Lifecycle, Nic


def guest(name: str, host: str | None = None, *, tap: str | None = None) -> GuestSpec:
    return GuestSpec(
        name=name,
        source=f"/c/{name}.toml",
        disks=(Disk(path=f"/vm/{name}.img"),),
        nics=(Nic(tap=tap),) if tap else (),
        lifecycle=Lifecycle(host=host),
    )


def specs(*guests: GuestSpec) -> dict[str, GuestSpec]:
    return {g.name: g for g in guests}


def test_any_runs_unplaced_guests_and_those_named_here() -> None:
    placed = place(specs(guest("a"), guest("b", "hv1"), guest("c", "hv2")), "hv1", "any")
    assert set(placed.here) == {"a", "b"}
    assert dict(placed.elsewhere) == {"c": "hv2"}


def test_required_runs_only_guests_named_here() -> None:
    placed = place(specs(guest("a"), guest("b", "hv1"), guest("c", "hv2")), "hv1", "required")
    assert set(placed.here) == {"b"}
    assert dict(placed.elsewhere) == {"a": None, "c": "hv2"}


def test_a_single_host_keeps_the_callers_mapping() -> None:
    # The pass caches its plan on the identity of its inputs: a split that changes nothing
    # must not make a new mapping every pass.
    guests = specs(guest("a"), guest("b", "hv1"))
    assert place(guests, "hv1", "any").here is guests


names = st.sampled_from(["hv1", "hv2", "hv3"])


@given(
    hosts=st.lists(st.one_of(st.none(), names), max_size=8),
    me=names,
    mode=st.sampled_from(PLACEMENTS),
)
def test_every_guest_is_here_or_elsewhere_never_both(
    hosts: list[str | None], me: str, mode: PlacementMode
) -> None:
    guests = specs(*(guest(f"g{i}", h) for i, h in enumerate(hosts)))
    placed = place(guests, me, mode)
    assert set(placed.here) | set(placed.elsewhere) == set(guests)
    assert not set(placed.here) & set(placed.elsewhere)
    for name in placed.here:
        assert guests[name].lifecycle.host in ((None, me) if mode == "any" else (me,))
    for name, host in placed.elsewhere.items():
        assert host == guests[name].lifecycle.host
        assert host != me


def parse(text: str) -> tuple[GuestSpec | None, list[str]]:
    spec, errors = parse_guest_text(text.encode(), file="/c/web.toml", stem="web")
    return spec, [f"{e.key}: {e.message}" for e in errors]


DISK = '[[disk]]\npath = "/vm/web/disk0.img"\n'


def test_host_names_compare_without_case() -> None:
    spec, errors = parse(f'host = "HV1.Example.org"\n{DISK}')
    assert errors == [] and spec is not None
    assert spec.lifecycle.host == "hv1.example.org"
    config, problems = parse_config('host_name = "HV1.example.ORG"\n', file="/etc/d.toml")
    assert problems == [] and config.host_name == "hv1.example.org"
    assert set(place({"web": spec}, config.host_name, "required").here) == {"web"}


def test_host_and_shared_storage_are_refused_with_reasons() -> None:
    assert parse(f'host = "-hv1"\n{DISK}')[1] == [
        "host: expected a host name: dot-separated labels of 1-63 letters, digits and `-`, "
        'not starting or ending with `-`, at most 253 in all, got "-hv1"'
    ]
    zvol = 'shared_storage = true\n[[disk]]\nzvol = "tank/web"\n'
    assert parse(zvol)[1][0].startswith("shared_storage: needs the first [[disk]] to be an image")
    device = 'shared_storage = true\n[[disk]]\npath = "/dev/da1"\n'
    assert parse(device)[1][0].startswith('shared_storage: the first disk "/dev/da1" is a device')


def test_placement_keys_round_trip_and_never_restart_a_guest() -> None:
    spec, errors = parse(f'host = "hv2"\nshared_storage = true\n{DISK}')
    assert errors == [] and spec is not None
    assert (spec.lifecycle.host, spec.lifecycle.shared_storage) == ("hv2", True)
    again, _ = parse(tomli_w.dumps(guest_to_toml(spec)))
    assert again == spec
    unplaced, _ = parse(DISK)
    assert unplaced is not None and unplaced.boot_key == spec.boot_key


def test_config_placement_keys() -> None:
    text = (
        'host_name = "hv1"\nplacement = "required"\nmetrics_listen = "127.0.0.1:0"\n'
        'metrics_file = "/var/tmp/node_exporter/bhyve.prom"\n[timings]\nmetrics_interval = "5s"\n'
    )
    config, problems = parse_config(text, file="/etc/d.toml")
    assert problems == []
    assert (config.host_name, config.placement, config.metrics_listen) == (
        "hv1",
        "required",
        "127.0.0.1:0",
    )
    assert str(config.metrics_file) == "/var/tmp/node_exporter/bhyve.prom"
    assert config.timings.metrics_interval == 5.0
    defaults, _ = parse_config("", file="/etc/d.toml")
    assert (defaults.host_name, defaults.placement, defaults.metrics_listen) == (None, "any", None)
    _, problems = parse_config('metrics_listen = "9712"\nplacement = "all"\n', file="/etc/d.toml")
    assert sorted(p.key for p in problems) == ["metrics_listen", "placement"]


def test_taps_clash_only_between_guests_that_can_share_a_host() -> None:
    def accepted(*guests: GuestSpec) -> set[str]:
        cands = [Candidate(g.source, g, i) for i, g in enumerate(guests)]
        return {c.spec.name for c in check_conflicts(cands, {})[0]}

    assert accepted(guest("a", "hv1", tap="tap0"), guest("b", "hv2", tap="tap0")) == {"a", "b"}
    assert accepted(guest("a", "hv1", tap="tap0"), guest("b", "hv1", tap="tap0")) == {"a"}
    # A guest without `host` may run anywhere (placement = "any"): it clashes with every host.
    assert accepted(guest("a", "hv1", tap="tap0"), guest("b", None, tap="tap0")) == {"a"}
    # Names and disks stay unique across the fleet's files.
    assert accepted(guest("a", "hv1"), replace(guest("a", "hv2"), source="/c/a2.toml")) == {"a"}
    shared = replace(guest("b", "hv2"), disks=guest("a").disks)
    assert accepted(guest("a", "hv1"), shared) == {"a"}
