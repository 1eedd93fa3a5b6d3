"""Helpers for supervision tests: bounded waits on real processes and files."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

WAIT_LIMIT = 10.0  # a bound for the machine being slow, never a timing assertion


def wait_for(predicate: Callable[[], bool], what: str, limit: float = WAIT_LIMIT) -> None:
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.01)


def write_script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path
