"""A simulated FreeBSD host at the command boundary, for `--simulate` and for tests.

Exports `SimulatedHost` lazily: the simulated tools import this package once per run and must
not pay for the test-side controls they never use.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from reconciler.sim.host import SimulatedHost

__all__ = ["SimulatedHost"]


def __getattr__(name: str) -> object:
    if name == "SimulatedHost":
        from reconciler.sim import host

        return host.SimulatedHost
    raise AttributeError(f"module 'reconciler.sim' has no attribute {name!r}")
