"""Status rows for the guests a daemon knows of but does not supervise: those placed on other
hosts (`elsewhere (hv2)` under `status --all`) and those placed here that wait for another
host to release their shared-storage lock (`waiting for hv1 to release`).

Pure: a pass's result and the accepted specs in, rows out. A row is reused while its guest's
spec and standing are unchanged, so the status writer (which caches each row's JSON by
identity) and a no-op pass pay nothing for a thousand guests placed elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from reconciler.sharedlock import Waiting
from reconciler.spec import GuestSpec
from reconciler.status import GuestStatus
from reconciler.units import parse_size

_Key = tuple[GuestSpec, str, str | None, str | None, str | None]


class FleetRows:
    def __init__(self) -> None:
        self._rows: dict[str, tuple[_Key, GuestStatus]] = {}

    def rows(
        self,
        specs: Mapping[str, GuestSpec],
        elsewhere: Mapping[str, str | None],
        waiting: Mapping[str, Waiting],
        *,
        supervised: Callable[[str], bool],
        errors: Mapping[str, str],
    ) -> tuple[GuestStatus, ...]:
        """One row per guest in `elsewhere` or `waiting` (for a lock, or for what its boot
        needs) that has no supervisor here (a guest moving away keeps its supervisor's row
        until it stopped)."""
        if not elsewhere and not waiting:
            self._rows.clear()
            return ()
        fresh: dict[str, tuple[_Key, GuestStatus]] = {}
        for name in sorted({*elsewhere, *waiting}):
            spec = specs.get(name)
            if spec is None or supervised(name):
                continue
            wait = waiting.get(name)
            key: _Key = (
                spec,
                "waiting" if wait is not None else "elsewhere",
                wait.holder if wait is not None else elsewhere.get(name),
                wait.why if wait is not None else None,
                errors.get(name),
            )
            cached = self._rows.get(name)
            fresh[name] = cached if cached is not None and cached[0] == key else (key, _row(key))
        self._rows = fresh
        return tuple(row for _key, row in fresh.values())


def _row(key: _Key) -> GuestStatus:
    spec, state, host, why, error = key
    return GuestStatus(
        name=spec.name,
        state=state,
        desired=spec.lifecycle.state,
        last_error=why,
        file=spec.source,
        spec_error=error,
        host=host,
        cpus=spec.cpus,
        memory_bytes=parse_size(spec.memory),
    )
