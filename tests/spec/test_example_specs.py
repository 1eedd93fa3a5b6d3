"""The example conf.d/ shipped with the project is valid and conflict-free."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.conflicts import Candidate, check_conflicts
from reconciler.guestfile import parse_guest_text

EXAMPLES = Path(__file__).resolve().parents[2] / "conf.d"
FILES = sorted(EXAMPLES.glob("*.toml"))


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_example_spec_is_valid(path: Path) -> None:
    spec, errors = parse_guest_text(path.read_text(), file=str(path), stem=path.stem)
    assert [str(e) for e in errors] == []
    assert spec is not None


def test_examples_cover_the_four_guests_of_the_issue() -> None:
    specs = [parse_guest_text(p.read_text(), file=str(p), stem=p.stem)[0] for p in FILES]
    loaded = [s for s in specs if s is not None]
    assert {s.loader for s in loaded} == {"bhyveload", "grub", "uefi"}
    assert any(s.graphics is not None for s in loaded)
    assert any(d.zvol is not None for s in loaded for d in s.disks)
    assert any(s.install is not None and s.loader == "bhyveload" for s in loaded)
    candidates = [Candidate(s.source, s) for s in loaded]
    accepted, errors = check_conflicts(candidates, {})
    assert errors == []
    assert accepted == candidates
