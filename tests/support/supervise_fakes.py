"""A fake clock, a fake `GuestOps` and a fake boot preparer: the state machine without processes.

The fake ops behave like the shim on a host: spawning makes a shim pid live, the test says when
the loader and bhyve run and how the boot ends, and signals have their FreeBSD effect (SIGTERM
powers off an ACPI guest, SIGKILL kills, --force-poweroff makes bhyve exit 1).
"""

from __future__ import annotations

import signal
from dataclasses import dataclass, fields, replace
from typing import Any

import structlog

from reconciler.guestphase import State
from reconciler.policy import ExitStatus
from reconciler.spec import GuestSpec, Lifecycle
from reconciler.supervise import BootPlan, BootRecord, GuestSupervisor


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass(frozen=True)
class Plan:
    loader: tuple[str, ...] | None
    bhyve: tuple[str, ...]
    files: tuple[tuple[str, str], ...] = ()


class Preparer:
    """prepare_boot: records which spec each boot used; can be told to fail."""

    def __init__(self) -> None:
        self.specs: list[GuestSpec] = []
        self.fail: Exception | None = None

    def __call__(self, spec: GuestSpec) -> BootPlan:
        if self.fail is not None:
            raise self.fail
        self.specs.append(spec)
        loader = None if spec.loader == "uefi" else ("bhyveload", "-m", spec.memory, spec.name)
        return Plan(loader, ("bhyve", "-c", str(spec.cpus), "-m", spec.memory, spec.name))


class FakeOps:
    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.calls: list[tuple[float, str, Any]] = []
        self.rec = BootRecord()
        self.live: set[int] = set()
        self.vm = False
        self.acpi = True  # the guest powers off on SIGTERM
        self.loader_obeys_term = True
        self.poweroff_works = True
        self.dies_on_kill = True
        self.forgotten = False
        self.booted_spec: GuestSpec | None = None
        self.foreign: set[int] = set()
        self.watched: list[int] = []
        self.output = b""  # what this boot's programs printed (its part of boot.log)
        self._next_pid = 100

    # -- the test drives the boot --------------------------------------------------------

    def _pid(self) -> int:
        self._next_pid += 1
        return self._next_pid

    def run_loader(self) -> int:
        pid = self._pid()
        self.live.add(pid)
        self.rec = replace(self.rec, loader_pid=pid)
        self.vm = True
        return pid

    def run_bhyve(self) -> int:
        if self.rec.loader_pid is not None:
            self.live.discard(self.rec.loader_pid)
        pid = self._pid()
        self.live.add(pid)
        self.rec = replace(self.rec, loader_pid=None, bhyve_pid=pid)
        self.vm = True
        return pid

    def end(self, phase: str, status: int) -> None:
        """The boot ends as the shim records it: every process gone, an exit line."""
        self.rec = replace(
            self.rec, exit=ExitStatus.from_shell("loader" if phase == "loader" else "bhyve", status)
        )
        for pid in (self.rec.shim_pid, self.rec.loader_pid, self.rec.bhyve_pid):
            if pid is not None:
                self.live.discard(pid)

    def set_record(self, rec: BootRecord, *, live: tuple[int, ...] = (), vm: bool = False) -> None:
        self.rec, self.live, self.vm = rec, set(live), vm

    def names(self) -> list[str]:
        return [c[1] for c in self.calls]

    def times(self, what: str) -> list[float]:
        return [c[0] for c in self.calls if c[1] == what]

    # -- GuestOps ------------------------------------------------------------------------

    def _call(self, what: str, arg: Any = None) -> None:
        self.calls.append((self.clock.now, what, arg))

    def spawn(self, boot: BootPlan, spec: GuestSpec) -> int:
        pid = self._pid()
        self._call("spawn", boot)
        self.booted_spec = spec
        self.output = b""
        self.rec = BootRecord(shim_pid=pid)
        self.live.add(pid)
        return pid

    def record(self) -> BootRecord:
        return self.rec

    def booted(self) -> GuestSpec | None:
        return self.booted_spec

    def trusted(self, rec: BootRecord) -> BootRecord:
        """Pids the test declared foreign (reused by another process) are not the guest's."""
        return replace(
            rec,
            shim_pid=None if rec.shim_pid in self.foreign else rec.shim_pid,
            loader_pid=None if rec.loader_pid in self.foreign else rec.loader_pid,
            bhyve_pid=None if rec.bhyve_pid in self.foreign else rec.bhyve_pid,
        )

    def watch(self, pid: int) -> None:
        self.watched.append(pid)

    def alive(self, pid: int) -> bool:
        return pid in self.live

    def signal(self, pid: int, sig: int) -> bool:
        self._call(f"signal-{signal.Signals(sig).name}", pid)
        if pid not in self.live:
            return False
        if sig == signal.SIGTERM:
            if pid == self.rec.bhyve_pid and self.acpi:
                self.end("bhyve", 1)
            elif pid == self.rec.loader_pid and self.loader_obeys_term:
                self.end("loader", 128 + signal.SIGTERM)
        elif sig == signal.SIGKILL and self.dies_on_kill:
            phase = "bhyve" if pid == self.rec.bhyve_pid else "loader"
            self.end(phase, 128 + signal.SIGKILL)
        return True

    def signal_group(self, pgid: int, sig: int) -> bool:
        self._call(f"group-{signal.Signals(sig).name}", pgid)
        if sig == signal.SIGKILL and self.dies_on_kill:
            self.live.clear()  # the shim dies too: no exit line
        return True

    def vm_exists(self) -> bool:
        return self.vm

    def boot_output(self) -> bytes:
        return self.output

    def destroy(self) -> None:
        self._call("destroy")
        self.vm = False
        if self.rec.bhyve_pid in self.live:
            self.end("bhyve", 4)

    def force_poweroff(self) -> None:
        self._call("force-poweroff")
        if self.poweroff_works and self.rec.bhyve_pid in self.live:
            self.end("bhyve", 1)

    def set_outcome(self, outcome: str) -> None:
        self.rec = replace(self.rec, outcome=outcome)

    def forget(self) -> None:
        self._call("forget")
        self.rec = BootRecord()
        self.forgotten = True


class SupervisorRig:
    """One supervised guest on a fake clock with fake ops."""

    def __init__(
        self,
        spec: GuestSpec | None,
        *,
        stop_timeout: float = 30.0,
        ops: FakeOps | None = None,
        clock: FakeClock | None = None,
    ) -> None:
        self.clock = clock or FakeClock()
        self.ops = ops or FakeOps(self.clock)
        self.prepare = Preparer()
        self.sup = GuestSupervisor(
            spec.name if spec is not None else "gone",
            spec=spec,
            ops=self.ops,
            prepare_boot=self.prepare,
            clock=self.clock,
            log=structlog.get_logger(),
            stop_timeout=stop_timeout,
        )

    def state(self) -> State:
        """The supervisor's state now (a call: mypy does not keep a narrowed property)."""
        return self.sup.state

    def boot_to_running(self) -> int:
        """Poll until a boot is spawned, then let its loader and bhyve run."""
        self.sup.poll()
        assert self.state() == "starting"
        if self.prepare.specs[-1].loader != "uefi":
            self.ops.run_loader()
            self.sup.poll()
        pid = self.ops.run_bhyve()
        self.sup.poll()
        assert self.state() == "running"
        return pid


_LIFECYCLE = {f.name for f in fields(Lifecycle)}


def guest(name: str = "vm1", **given: Any) -> GuestSpec:
    """A spec; lifecycle settings (`restart=`, `state=`, ...) may be given flat."""
    life = {k: given.pop(k) for k in list(given) if k in _LIFECYCLE}
    return GuestSpec(name=name, lifecycle=Lifecycle(**life), **given)
