"""Fixtures shared by several test directories: the CLI rig and the daemon harness.

Their support modules live in tests/support, which pytest puts on sys.path (pyproject's
`pythonpath`), so any test may `from daemon_harness import Harness` wherever it lives.
"""

from __future__ import annotations

import compileall
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_harness import Harness
from e2e_helpers import CliRig, make_rig

import reconciler

# PYTHONDONTWRITEBYTECODE (set on the machines the suite runs on) would make every xdist worker
# rewrite the asserts of every test module again (seconds of CPU each) and every daemon and CLI
# process the tests start compile the modules no bytecode was ever written for. Bytecode is
# only a cache (gitignored): the suite keeps it, for its own processes and the project's.
sys.dont_write_bytecode = False


def pytest_configure(config: pytest.Config) -> None:
    """Before any worker starts: bytecode for every module of the package, so the hundreds of
    `python -m reconciler` processes the tests run read it instead of compiling."""
    if not hasattr(config, "workerinput"):
        compileall.compile_dir(Path(reconciler.__file__).parent, quiet=1)


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto` (pyproject's addopts): two workers per usable CPU. The suite mostly waits on
    real processes (daemons, shims, simulated bhyves), so one worker runs while another waits."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return 2 * (cpus or 1)


@pytest.fixture
def rig(tmp_path: Path) -> CliRig:
    """A simulated FreeBSD host with its daemon config and conf.d, for running the CLI."""
    return make_rig(tmp_path)


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    """A fresh simulated host and conf.d for real daemons; nothing is left running after."""
    h = Harness(tmp_path)
    try:
        yield h
    finally:
        h.cleanup()
