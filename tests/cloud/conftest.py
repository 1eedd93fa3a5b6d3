"""The end-to-end rig for the cloud image tests: a simulated FreeBSD host, its daemon config and
conf.d, per test."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# tests/ is not a package: put it on the path so the rig shared with the other e2e tests loads.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from e2e_helpers import Rig, make_rig


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return make_rig(tmp_path)
