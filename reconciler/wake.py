"""What wakes the daemon's loop: the items its one queue carries.

The conf.d watcher, the kernel's exit notifications, the control socket and the signal
handlers each put one of these on the queue (a `queue.SimpleQueue`, whose `put` is safe from a
signal handler); the loop takes them all and acts. Plain values.
"""

from __future__ import annotations

import contextlib
import queue
from dataclasses import dataclass

from reconciler.control import Request


@dataclass(frozen=True)
class ConfChanged:
    names: tuple[str, ...] = ()


@dataclass(frozen=True)
class GuestEvent:
    name: str


@dataclass(frozen=True)
class SignalEvent:
    signum: int


@dataclass(frozen=True)
class OperatorRequest:
    request: Request


@dataclass(frozen=True)
class PassWanted:
    why: str  # a background copy ended; a boot waits for a pass to make its disks ready


Wake = ConfChanged | GuestEvent | SignalEvent | OperatorRequest | PassWanted


def take(wake: queue.SimpleQueue[Wake], timeout: float | None) -> list[Wake]:
    """Every queued wake-up; with a timeout, wait that long for the first."""
    items: list[Wake] = []
    with contextlib.suppress(queue.Empty):
        if timeout is not None:
            items.append(wake.get(timeout=timeout))
        while True:
            items.append(wake.get_nowait())
    return items
