"""A fresh simulated host per test, and a way to run its tools as the daemon would."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sim_tools import Boot, Run

from reconciler.sim import SimulatedHost


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


@pytest.fixture
def boot(host: SimulatedHost) -> Iterator[Boot]:
    """Start a simulated bhyve as the supervisor would; every one left is killed afterwards."""
    started: list[subprocess.Popen[str]] = []

    def start(*argv: str) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            ["bhyve", *argv],
            env=host.env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        if process.stderr is not None:
            process.stderr.close()
