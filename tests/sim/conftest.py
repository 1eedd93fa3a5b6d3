"""A fresh simulated host per test, and a way to run its tools as the daemon would."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.sim import SimulatedHost

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def host(tmp_path: Path) -> SimulatedHost:
    return SimulatedHost(tmp_path / "host").setup()


@pytest.fixture
def tool(host: SimulatedHost) -> Run:
    """Run a tool by name through PATH, with no shell, as the FreeBSD driver does."""

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(argv), env=host.env(), capture_output=True, text=True, timeout=30, check=False
        )

    return run
