"""Fleet tests share the daemon harness (tests/daemon/daemon_harness.py)."""

from __future__ import annotations

import sys
from pathlib import Path

# tests/ is not a package: put the daemon harness's directory on the path.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "daemon"))
