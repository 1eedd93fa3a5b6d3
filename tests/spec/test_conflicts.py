"""Two files may not claim one name, tap, disk or console: the later-changed one is refused."""

from __future__ import annotations

import itertools

from reconciler.conflicts import Candidate, check_conflicts
from reconciler.errors import ConflictError
from reconciler.spec import Disk, GuestSpec, Nic

_unique = itertools.count()


def guest(
    name: str,
    *,
    taps: tuple[str, ...] = (),
    disks: tuple[Disk, ...] | None = None,
    console: str = "nmdm",
) -> GuestSpec:
    return GuestSpec(
        name=name,
        source=f"/c/{name}.toml",
        disks=disks if disks is not None else (Disk(path=f"/vm/{next(_unique)}.img"),),
        nics=tuple(Nic(tap=t) for t in taps),
        console=console,
    )


def cand(file: str, spec: GuestSpec, mtime: int) -> Candidate:
    return Candidate(file=file, spec=spec, mtime_ns=mtime)


def refused(errors: list[ConflictError]) -> list[tuple[str, str]]:
    return [(e.file, e.key) for e in errors]


def test_no_conflict_accepts_all_in_input_order() -> None:
    cands = [cand("/c/b.toml", guest("b"), 1), cand("/c/a.toml", guest("a"), 2)]
    accepted, errors = check_conflicts(cands, {})
    assert accepted == cands
    assert errors == []


def test_same_name_refuses_the_later_changed_file_and_names_the_other() -> None:
    older = cand("/c/z.toml", guest("web"), 100)
    newer = cand("/c/a.toml", guest("web"), 200)
    accepted, errors = check_conflicts([newer, older], {})
    assert accepted == [older]
    assert refused(errors) == [("/c/a.toml", "name")]
    assert "/c/z.toml" in errors[0].message
    assert isinstance(errors[0], ConflictError)


def test_equal_mtimes_refuse_the_greater_path() -> None:
    first = cand("/c/a.toml", guest("web"), 5)
    second = cand("/c/b.toml", guest("web"), 5)
    accepted, errors = check_conflicts([second, first], {})
    assert accepted == [first]
    assert refused(errors) == [("/c/b.toml", "name")]


def test_incumbent_keeps_its_claim_even_when_changed_later() -> None:
    running = cand("/c/a.toml", guest("a", taps=("tap0",)), 900)
    newcomer = cand("/c/b.toml", guest("b", taps=("tap0",)), 100)
    accepted, errors = check_conflicts([running, newcomer], {"a": "/c/a.toml"})
    assert accepted == [running]
    assert refused(errors) == [("/c/b.toml", "nic[0].tap")]
    assert "/c/a.toml" in errors[0].message and "tap0" in errors[0].message


def test_a_file_that_renames_its_guest_is_not_the_incumbent_of_the_new_name() -> None:
    renamed = cand("/c/a.toml", guest("web"), 900)  # provided guest "a" before
    other = cand("/c/b.toml", guest("web"), 100)
    accepted, errors = check_conflicts([renamed, other], {"a": "/c/a.toml"})
    assert accepted == [other]
    assert refused(errors) == [("/c/a.toml", "name")]


def test_shared_tap_names_the_nic_key() -> None:
    a = cand("/c/a.toml", guest("a", taps=("tap0", "tap1")), 1)
    b = cand("/c/b.toml", guest("b", taps=("tap7", "tap1")), 2)
    _accepted, errors = check_conflicts([a, b], {})
    assert refused(errors) == [("/c/b.toml", "nic[1].tap")]


def test_shared_disk_path_and_zvol_device_compare_by_device() -> None:
    a = cand("/c/a.toml", guest("a", disks=(Disk(path="/dev/zvol/tank/vm"),)), 1)
    b = cand("/c/b.toml", guest("b", disks=(Disk(path="/vm/b.img"), Disk(zvol="tank/vm"))), 2)
    c = cand("/c/c.toml", guest("c", disks=(Disk(path="/dev/zvol/tank/vm"),)), 3)
    accepted, errors = check_conflicts([a, b, c], {})
    assert accepted == [a]
    assert refused(errors) == [("/c/b.toml", "disk[1].zvol"), ("/c/c.toml", "disk[0].path")]


def test_explicit_console_clashing_with_an_nmdm_console() -> None:
    a = cand("/c/a.toml", guest("a"), 1)
    b = cand("/c/b.toml", guest("b", console="/dev/nmdm-a.1A"), 2)
    _accepted, errors = check_conflicts([a, b], {})
    assert refused(errors) == [("/c/b.toml", "console")]


def test_same_name_is_not_also_reported_as_a_console_clash() -> None:
    a = cand("/c/a.toml", guest("web"), 1)
    b = cand("/c/b.toml", guest("web"), 2)
    _accepted, errors = check_conflicts([a, b], {})
    assert refused(errors) == [("/c/b.toml", "name")]


def test_every_clash_of_a_refused_file_is_reported() -> None:
    shared = (Disk(path="/vm/web.img"),)
    a = cand("/c/a.toml", guest("web", taps=("tap0",), disks=shared), 1)
    b = cand("/c/b.toml", guest("web", taps=("tap0",), disks=shared), 2)
    _accepted, errors = check_conflicts([a, b], {})
    assert sorted(refused(errors)) == [
        ("/c/b.toml", "disk[0].path"),
        ("/c/b.toml", "name"),
        ("/c/b.toml", "nic[0].tap"),
    ]


def test_a_refused_file_claims_nothing() -> None:
    a = cand("/c/a.toml", guest("a", taps=("tap0",)), 1)
    b = cand("/c/b.toml", guest("b", taps=("tap0", "tap1")), 2)
    c = cand("/c/c.toml", guest("c", taps=("tap1",)), 3)
    accepted, errors = check_conflicts([a, b, c], {})
    assert accepted == [a, c]
    assert refused(errors) == [("/c/b.toml", "nic[0].tap")]


def test_a_console_on_the_other_end_of_another_guests_nmdm_pair_clashes() -> None:
    a = cand("/c/a.toml", guest("a"), 1)  # nmdm: /dev/nmdm-a.1A, its peer /dev/nmdm-a.1B
    b = cand("/c/b.toml", guest("b", console="/dev/nmdm-a.1B"), 2)
    accepted, errors = check_conflicts([a, b], {})
    assert accepted == [a]
    assert refused(errors) == [("/c/b.toml", "console")]
    assert "/dev/nmdm-a.1" in errors[0].message and "guest `a`" in errors[0].message


def test_explicit_nmdm_consoles_clash_by_pair_whichever_end_they_name() -> None:
    a = cand("/c/a.toml", guest("a", console="/dev/nmdm5B"), 1)
    b = cand("/c/b.toml", guest("b", console="/dev/nmdm5A"), 2)
    c = cand("/c/c.toml", guest("c", console="/dev/nmdm55A"), 3)
    accepted, errors = check_conflicts([a, b, c], {})
    assert accepted == [a, c]
    assert refused(errors) == [("/c/b.toml", "console")]


def test_a_claim_held_outside_the_files_refuses_another_guest_naming_the_holder() -> None:
    web = cand("/c/web.toml", guest("web", taps=("tap3",)), 1)
    accepted, errors = check_conflicts([web], {}, {("tap", "tap3"): "db"})
    assert accepted == []
    assert refused(errors) == [("/c/web.toml", "nic[0].tap")]
    assert "guest `db`" in errors[0].message
    assert isinstance(errors[0], ConflictError)


def test_a_claim_held_outside_the_files_for_the_same_guest_is_its_own() -> None:
    web = cand("/c/web.toml", guest("web", taps=("tap3",)), 1)
    accepted, errors = check_conflicts([web], {"web": "/c/web.toml"}, {("tap", "tap3"): "web"})
    assert (accepted, errors) == ([web], [])


def test_a_claim_held_outside_beats_even_an_incumbent_and_frees_nothing_else() -> None:
    a = cand("/c/a.toml", guest("a", taps=("tap1",)), 1)
    b = cand("/c/b.toml", guest("b", taps=("tap2",)), 2)
    accepted, errors = check_conflicts(
        [a, b], {"a": "/c/a.toml", "b": "/c/b.toml"}, {("tap", "tap1"): "c"}
    )
    assert accepted == [b]
    assert refused(errors) == [("/c/a.toml", "nic[0].tap")]
