"""The shapes of tests/sim's fixtures: a simulated tool run, and a simulated bhyve started."""

from __future__ import annotations

import subprocess
from typing import Protocol


class Run(Protocol):
    """Run one simulated tool by name through PATH, without a shell, as the driver does."""

    def __call__(self, *argv: str) -> subprocess.CompletedProcess[str]: ...


class Boot(Protocol):
    """Start a simulated bhyve with `argv`, as the supervisor would."""

    def __call__(self, *argv: str) -> subprocess.Popen[str]: ...
