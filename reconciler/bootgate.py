"""Whether a guest may boot the spec it is about to boot: only once a pass has made its disks
and seed ready for it (copied, cloned, grown, built), so a boot never races the pass that
prepares it, and a guest whose image is missing waits instead of crash-looping.

Pure: the daemon tells the gate what each pass found (`note`) and asks it before each boot
(`why_wait`). A guest with nothing to prepare (no sized or sourced disk, no `[cloud_init]`)
is never held.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from reconciler.plan import needs_preparation
from reconciler.spec import GuestSpec

NEXT_PASS = "its disks and seed are made ready by the next pass"


@dataclass(frozen=True)
class Wait:
    """Why a boot waits; `needs_pass` when no pass has looked at this spec yet."""

    why: str
    needs_pass: bool = False


class BootGate:
    def __init__(self) -> None:
        self._ready: dict[str, GuestSpec] = {}  # guest -> the spec a pass made it ready for
        self._waits: dict[str, str] = {}  # guest -> why the last pass could not

    def note(
        self,
        desired: Mapping[str, GuestSpec],
        running: frozenset[str],
        waits: Mapping[str, str],
    ) -> None:
        """A pass over `desired` made every idle guest not in `waits` ready. A running guest's
        disks were not looked at: what was noted for it stands."""
        ready: dict[str, GuestSpec] = {}
        for name, spec in desired.items():
            if name in running:
                if name in self._ready:
                    ready[name] = self._ready[name]
            elif name not in waits:
                ready[name] = spec
        self._ready = ready
        self._waits = dict(waits)

    def why_wait(self, spec: GuestSpec) -> Wait | None:
        """None when `spec` may boot now; else why not."""
        if not needs_preparation(spec):
            return None
        ready = self._ready.get(spec.name)
        if ready is spec or (ready is not None and ready.boot_key == spec.boot_key):
            return None
        why = self._waits.get(spec.name)
        if why is None:
            return Wait(NEXT_PASS, needs_pass=True)
        return Wait(why)
