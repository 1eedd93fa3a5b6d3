"""`bhyve-reconciler run` as a real process on a simulated host, and what a test reads from it.

The daemon, its boot shims and the simulated bhyve processes are all real; the harness only
starts them, reads what they leave behind (the JSON log, run_dir/status.json, the simulated
host's command log) and kills whatever is left when the test ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import tomli_w
from cli_runner import Forked, run_cli, start_daemon

from reconciler.sim import SimulatedHost
from reconciler.status import DaemonStatus, GuestStatus, read_status

T = TypeVar("T")
WAIT = 15.0  # seconds: generous bound for anything the daemon should do "at once"

# The daemon's [timings] in these tests: production waits shortened so the real daemon runs
# through crash backoffs in a fraction of a second. `stable_after` stays long: a guest that
# crashes again within a test is never forgiven, so its backoff grows as the policy says.
CRASH_BACKOFF = 0.1  # seconds before the first restart after a crash; doubles per crash
DEBOUNCE = 0.02  # seconds conf.d must be quiet before a pass
KILL_GRACE = 1.0  # seconds after a forced power-off before SIGKILL
# A crash backoff a test can watch: long enough for polls of status.json to see the guest in
# `crash-loop` before it boots again, on a busy machine.
VISIBLE_BACKOFF = 0.4
# Room for a wrong action to show before a test checks it did not happen: a wrong restart or
# boot would come at once or after one crash backoff step, both well within it.
ROOM = 5 * CRASH_BACKOFF
Event = dict[str, Any]


def wait_for(probe: Callable[[], T | None], what: str, timeout: float = WAIT) -> T:
    """Poll `probe` until it returns something truthy; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


def guest_toml(
    name: str,
    *,
    cpus: int = 1,
    tap: str | None = None,
    extra: str = "",
) -> str:
    """A small guest: a sparse disk the reconciler creates, optionally one tap in bridge0."""
    text = f'name = "{name}"\ncpus = {cpus}\nmemory = "256M"\n{extra}\n'
    text += f'[[disk]]\npath = "/vm/{name}/disk0.img"\nsize = "1G"\n'
    if tap is not None:
        text += f'\n[[nic]]\ntap = "{tap}"\nbridge = "bridge0"\n'
    return text


def event_time(event: Event) -> float:
    return datetime.fromisoformat(event["timestamp"]).timestamp()


class Harness:
    """One simulated host, one conf.d, one daemon config; daemons started on demand."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.root = tmp_path / "host"
        self.sim = SimulatedHost(self.root).setup()
        self.conf_dir = tmp_path / "conf.d"
        self.conf_dir.mkdir(mode=0o755)
        os.chmod(self.conf_dir, 0o755)
        self.state_dir = self.root / "var/db/bhyve-reconciler"
        # Short: run_dir/control.sock must fit a UNIX socket address (sun_path: 104 bytes on
        # FreeBSD, 108 on Linux) under pytest's tmp_path, a worker's (popen-gwN/) included.
        self.run_dir = self.root / "run"
        self.config = tmp_path / "daemon.toml"
        self.configure()
        # Those a test started itself with Popen too, to be killed at the end all the same.
        self.daemons: list[Forked | subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []

    def configure(self, *, stop_timeout: str = "1s", crash_backoff: float = CRASH_BACKOFF) -> None:
        self.config.write_text(
            f'conf_dir = "{self.conf_dir}"\n'
            f'state_dir = "{self.state_dir}"\n'
            f'run_dir = "{self.run_dir}"\n'
            f'stop_timeout = "{stop_timeout}"\n'
            # Long: only file events, boot records and signals can explain what a test sees.
            'resync_interval = "1h"\n'
            "[bridges.bridge0]\n"
            'members = ["igb0"]\n'
            "[timings]\n"
            f"crash_backoff = {crash_backoff}\n"
            'crash_backoff_max = "1m"\n'
            'stable_after = "1h"\n'
            f"kill_grace = {KILL_GRACE}\n"
            f"debounce = {DEBOUNCE}\n"
        )

    def set_timings(self, **values: str | float) -> None:
        """Set keys of the config's [timings] over the harness's short ones (`"100ms"`, 2.0)."""
        config = tomllib.loads(self.config.read_text())
        config.setdefault("timings", {}).update(values)
        self.config.write_text(tomli_w.dumps(config))

    # -- the daemon and the CLI ----------------------------------------------------------

    def options(self) -> list[str]:
        """The global options of every command here: this config, this simulated host."""
        return ["--config", str(self.config), "--simulate", "--sim-dir", str(self.root)]

    def base_argv(self) -> list[str]:
        return [sys.executable, "-m", "reconciler", *self.options()]

    def start(self, *, wait: bool = True) -> Forked:
        """Start a daemon; with `wait`, return once it wrote its first status."""
        log = self.tmp / f"daemon-{len(self.logs) + 1}.log"
        proc = start_daemon([*self.options(), "run", "--log-format", "json"], log)
        self.daemons.append(proc)
        self.logs.append(log)
        if wait:
            wait_for(lambda: self._first_status(proc), f"daemon {proc.pid} to write its status")
        return proc

    def _first_status(self, proc: Forked) -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"daemon exited with {proc.returncode}:\n{self.log_text()}")
        status = self.status()
        return status is not None and status.pid == proc.pid and status.passes >= 1

    def cli(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        return run_cli([*self.options(), *args], env=env, timeout=timeout)

    def stop_daemon(self, proc: Forked, timeout: float = 30.0) -> int:
        """SIGTERM, as rc.d stop does; the exit status."""
        proc.send_signal(signal.SIGTERM)
        return proc.wait(timeout=timeout)

    # -- conf.d --------------------------------------------------------------------------

    def put(self, name: str, text: str) -> Path:
        """Write conf.d/NAME.toml as config-management tools do: a temp file, then rename."""
        tmp = self.tmp / f".{name}.toml.tmp"
        tmp.write_text(text)
        os.chmod(tmp, 0o644)
        target = self.conf_dir / f"{name}.toml"
        os.rename(tmp, target)
        return target

    def remove(self, name: str) -> None:
        (self.conf_dir / f"{name}.toml").unlink()

    # -- what the daemon left behind -------------------------------------------------------

    def status(self) -> DaemonStatus | None:
        return read_status(self.run_dir)

    def wait_status(
        self, holds: Callable[[DaemonStatus], bool], what: str, timeout: float = WAIT
    ) -> DaemonStatus:
        """The first status.json for which `holds` is true."""

        def probe() -> DaemonStatus | None:
            status = self.status()
            return status if status is not None and holds(status) else None

        return wait_for(probe, what, timeout)

    def passes(self) -> int:
        status = self.status()
        assert status is not None, "no status.json yet"
        return status.passes

    def observations(self) -> int:
        """Host observations so far: every pass starts with one `kldstat -v` (status.json's
        `passes` is only rewritten when something else in the status changes)."""
        return sum(argv[:2] == ["kldstat", "-v"] for argv in self.sim.commands())

    def wait_pass(self, after: int, timeout: float = WAIT) -> None:
        """Until a pass began after `after` observations (see `observations`)."""
        wait_for(lambda: self.observations() > after, "a pass", timeout)

    def guest(self, name: str) -> GuestStatus | None:
        status = self.status()
        if status is None:
            return None
        return next((g for g in status.guests if g.name == name), None)

    def state(self, name: str) -> str | None:
        row = self.guest(name)
        return None if row is None else row.state

    def wait_state(self, name: str, state: str, timeout: float = WAIT) -> GuestStatus:
        def probe() -> GuestStatus | None:
            row = self.guest(name)
            return row if row is not None and row.state == state else None

        try:
            return wait_for(probe, f"{name} to be {state}", timeout)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; now {self.guest(name)}\n{self.log_text()}") from None

    def wait_running(self, name: str, *, not_pid: int | None = None, timeout: float = WAIT) -> int:
        """The pid of `name`'s bhyve once the daemon reports it running and the sim agrees;
        with `not_pid`, a bhyve other than that one (the guest booted again)."""

        def probe() -> int | None:
            row = self.guest(name)
            if row is None or row.state != "running" or row.pid in (None, not_pid):
                return None
            return row.pid if self.sim.bhyve_pid(name) == row.pid else None

        try:
            return wait_for(probe, f"{name} to run", timeout)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; now {self.guest(name)}\n{self.log_text()}") from None

    def wait_boots(self, name: str, count: int, timeout: float = WAIT) -> None:
        """Until the simulated host has seen `count` bhyve runs of guest `name`."""
        wait_for(lambda: self.sim.boots(name) == count, f"boot {count} of {name}", timeout)

    def log_text(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')}" for p in self.logs)

    def events(self, event: str | None = None, **fields: object) -> list[Event]:
        """Structlog events of every daemon so far, in order, filtered by name and fields."""
        found: list[Event] = []
        for path in self.logs:
            for line in path.read_text(errors="replace").splitlines():
                if not line.startswith("{"):
                    continue
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line being written right now
                if event is not None and entry.get("event") != event:
                    continue
                if all(entry.get(k) == v for k, v in fields.items()):
                    found.append(entry)
        return found

    def commands_for(self, name: str) -> list[list[str]]:
        """The simulated host's command log, narrowed to the tools that act on VM `name`."""
        loaders = ("bhyve", "bhyveload", "grub-bhyve")
        return [
            argv
            for argv in self.sim.commands()
            if (argv[0] in loaders and argv[-1] == name)
            or (argv[0] == "bhyvectl" and f"--vm={name}" in argv)
        ]

    # -- clean-up ------------------------------------------------------------------------

    def cleanup(self) -> None:
        """SIGKILL every daemon, then every process whose argv lives under this test's tmp
        directory (shims, loaders, simulated bhyves: they run in their own sessions)."""
        for proc in self.daemons:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
        if not os.path.isdir("/proc"):
            self._kill_recorded()
            return
        for _ in range(20):
            pids = [pid for pid, _ in self._own_processes()]
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)

    def _kill_recorded(self) -> None:
        """Without /proc: each boot's process group from its shim record, and the sim's bhyves."""
        for record in (self.run_dir / "guests").glob("*/shim.pid"):
            text = record.read_text().strip()
            if text.isdigit():
                with contextlib.suppress(OSError):
                    os.killpg(int(text), signal.SIGKILL)
        for guest in (self.root / ".sim" / "guests").glob("*"):
            pid = self.sim.bhyve_pid(guest.name)
            if pid is not None:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)

    def bhyve_processes(self, name: str) -> list[int]:
        """Live simulated bhyves of guest `name` (argv[0] is `bhyve: NAME`, as setproctitle)."""
        title = f"bhyve: {name}\0".encode()
        return [pid for pid, cmdline in self._own_processes() if cmdline.startswith(title)]

    def _own_processes(self) -> Iterable[tuple[int, bytes]]:
        # With the separator: test_x1's marker must not match test_x10's processes.
        marker = os.path.join(self.tmp, "").encode()
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if marker in cmdline and stat.rpartition(")")[2].split()[:1] != ["Z"]:
                yield int(entry), cmdline
