"""Fixtures for supervision tests: stand-in loader and bhyve programs."""

from __future__ import annotations

from pathlib import Path

import pytest
from supervise_support import write_script


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    """Stand-in loader and bhyve programs, small POSIX sh scripts."""
    d = tmp_path / "bin"
    d.mkdir()
    # Each dumps its argv NUL-separated, so any byte but NUL can be compared verbatim.
    dump = 'out=$1; shift; : > "$out"; for a; do printf "%s\\0" "$a" >> "$out"; done\n'
    write_script(d / "dump-argv", dump)
    write_script(d / "exit-with", 'printf "%s\\n" "$2" >> "$1"; exit "$3"\n')
    write_script(d / "sleeper", 'printf "%s\\n" "$2" >> "$1"; exec sleep 60\n')
    return d
