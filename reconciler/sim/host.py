"""`SimulatedHost`: lays out a simulated FreeBSD host in a directory and lets tests drive it.

Owns the on-disk layout (ROOT/bin wrappers, ROOT/dev, firmware, ROOT/.sim state) and the
test-side controls: the command log, fault injection, inspection of the state and guest
control. It never plays a tool itself; the tools are the wrappers in `bin_dir`, run through
PATH exactly as the FreeBSD driver runs FreeBSD's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from reconciler.facts import Interface, InterfaceKind
from reconciler.sim import state as st
from reconciler.sim.vm import EXIT_STATUS, tell_guest

TOOLS = (
    "kldstat",
    "kldload",
    "kldunload",
    "ifconfig",
    "sysctl",
    "zfs",
    "bhyvectl",
    "bhyveload",
    "grub-bhyve",
    "bhyve",
    "ps",
)
FIRMWARE = ("BHYVE_UEFI.fd", "BHYVE_UEFI_VARS.fd")
_PACKAGE_PARENT = str(Path(__file__).resolve().parent.parent.parent)


@dataclass(frozen=True)
class CommandRecord:
    """One tool run as the log saw it; `status` is None for a bhyve that is still its guest."""

    argv: tuple[str, ...]
    status: int | None


class SimulatedHost:
    """A FreeBSD host at the command boundary, kept in `root`."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.bin_dir = self.root / "bin"
        self.vmm_dir = self.root / "dev" / "vmm"
        self._sim_dir = self.root / st.SIM_DIR
        self._log = self._sim_dir / "commands.log"

    # -- set-up -----------------------------------------------------------------------------

    def setup(self, physical: Sequence[str] = ("igb0", "em0")) -> SimulatedHost:
        """Create the layout and, on first use only, a fresh host's state."""
        for directory in (
            self.bin_dir,
            self.vmm_dir,
            self.root / "dev" / "zvol",
            self._sim_dir / "guests",
            self.root / st.FIRMWARE_DIR.lstrip("/"),
        ):
            directory.mkdir(parents=True, exist_ok=True)
        for name in FIRMWARE:
            firmware = self.root / st.FIRMWARE_DIR.lstrip("/") / name
            if not firmware.exists():
                firmware.write_bytes(b"simulated edk2 " + name.encode() + b"\n")
        for tool in TOOLS:
            self._write_wrapper(tool)
        if not (self._sim_dir / "state").exists():
            with open(self._sim_dir / "lock", "a"):
                pass
            st.write_state(str(self._sim_dir), st.default_state(tuple(physical)))
        self._log.touch()
        return self

    def _write_wrapper(self, tool: str) -> None:
        # -S: no site-packages to scan; -E: PYTHONDONTWRITEBYTECODE would otherwise make
        # every tool run recompile the sim's modules.
        text = (
            f"#!{sys.executable} -SE\n"
            "import sys\n"
            f"sys.path.insert(0, {_PACKAGE_PARENT!r})\n"
            "from reconciler.sim.tools import main\n"
            f"sys.exit(main({tool!r}, {str(self.root)!r}, sys.argv[1:]))\n"
        )
        wrapper = self.bin_dir / tool
        if not wrapper.exists() or wrapper.read_text() != text:
            tmp = wrapper.with_suffix(".tmp")
            tmp.write_text(text)
            tmp.chmod(0o755)
            tmp.replace(wrapper)

    def env(self) -> dict[str, str]:
        """os.environ with the simulated tools first on PATH."""
        env = dict(os.environ)
        env["PATH"] = f"{self.bin_dir}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}"
        env[st.ROOT_ENV] = str(self.root)
        env.pop(st.UNLOGGED_ENV, None)
        return env

    def path(self, host_path: str) -> Path:
        """Where the FreeBSD path `host_path` lives in this sim (`/vm/a.img` -> ROOT/vm/a.img)."""
        return Path(st.host_path(str(self.root), host_path))

    # -- the command log and faults ----------------------------------------------------------

    def command_records(self) -> list[CommandRecord]:
        try:
            lines = self._log.read_text().splitlines()
        except FileNotFoundError:
            return []
        records = []
        for line in lines:
            entry = json.loads(line)
            records.append(CommandRecord(tuple(entry["argv"]), entry["status"]))
        return records

    def commands(self) -> list[list[str]]:
        """The argv of every tool run (not through `run`), in the order they finished."""
        return [list(record.argv) for record in self.command_records()]

    def clear_commands(self) -> None:
        with open(self._log, "w"):
            pass

    def inject_fault(
        self,
        pattern: str,
        status: int = 1,
        stderr: str = "simulated failure",
        count: int | None = None,
    ) -> None:
        """Make tool runs whose argv (joined by spaces) matches the fnmatch `pattern` fail."""
        with st.Store(str(self.root)) as store:
            store.state["faults"].append(
                {"pattern": pattern, "status": status, "stderr": stderr, "count": count}
            )
            store.dirty = True

    def clear_faults(self) -> None:
        with st.Store(str(self.root)) as store:
            store.state["faults"].clear()
            store.dirty = True

    def run(self, argv: Sequence[str], timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        """Run a simulated tool behind the daemon's back: not logged, not subject to faults."""
        env = self.env()
        env[st.UNLOGGED_ENV] = "1"
        return subprocess.run(
            [str(self.bin_dir / argv[0]), *argv[1:]],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    # -- inspection --------------------------------------------------------------------------

    def _state(self) -> st.State:
        return st.read_state(str(self.root))

    def interfaces(self) -> dict[str, Interface]:
        """Every interface as `parse_ifconfig` would read it from `ifconfig -a`."""
        state = self._state()
        result: dict[str, Interface] = {}
        for name, iface in state["interfaces"].items():
            kind: InterfaceKind
            if iface["kind"] == "tap":
                kind, groups = "tap", ["tap"]
            elif iface["kind"] == "bridge":
                kind, groups = "bridge", ["bridge"]
            else:
                kind, groups = "other", ["lo"] if iface["kind"] == "loopback" else []
            guest = iface["opened_by"] if kind == "tap" else None
            result[name] = Interface(
                name=name,
                kind=kind,
                up=iface["up"],
                members=tuple(reversed(iface["members"])),
                opened_by=None if guest is None else st.bhyve_pid(str(self.root), guest),
                description=iface["description"],
                groups=tuple(groups + iface["groups"]),
            )
        return result

    def modules(self) -> frozenset[str]:
        return frozenset(st.modules_present(self._state()))

    def sysctl(self, name: str) -> str | None:
        return self._state()["sysctl"].get(name)

    def vms(self) -> frozenset[str]:
        return frozenset(os.listdir(self.vmm_dir)) if self.vmm_dir.is_dir() else frozenset()

    def zvols(self) -> dict[str, int]:
        return {
            name: dataset["volsize"]
            for name, dataset in self._state()["datasets"].items()
            if dataset["type"] == "volume"
        }

    # -- guest control -----------------------------------------------------------------------

    def _guest_dir(self, name: str) -> Path:
        directory = Path(st.guest_dir(str(self.root), name))
        directory.mkdir(parents=True, exist_ok=True)
        return directory

    def set_acpi(self, name: str, honour: bool) -> None:
        """Whether guest `name` powers off on SIGTERM (True) or ignores it (False)."""
        marker = self._guest_dir(name) / "noacpi"
        if honour:
            marker.unlink(missing_ok=True)
        else:
            marker.touch()

    def guest_do(self, name: str, what: str) -> None:
        """reboot | poweroff | halt | triple-fault | fail: the running bhyve exits 0/1/2/3/4."""
        if what not in EXIT_STATUS:
            raise ValueError(f"guest_do: {what!r} is not one of {', '.join(EXIT_STATUS)}")
        if not tell_guest(str(self.root), name, EXIT_STATUS[what]):
            raise LookupError(f"no simulated bhyve runs for guest {name}")

    def set_loader_exit(self, name: str, status: int) -> None:
        """The next bhyveload or grub-bhyve run for `name` exits with `status` (once)."""
        with st.Store(str(self.root)) as store:
            guest = store.state["guests"].setdefault(name, st.new_guest())
            guest["loader_exit"] = status
            store.dirty = True

    def bhyve_pid(self, name: str) -> int | None:
        return st.bhyve_pid(str(self.root), name)

    def wait_for_bhyve(self, name: str, timeout: float = 10.0) -> int:
        """The pid of guest `name`'s bhyve once it is ready for signals."""
        deadline = time.monotonic() + timeout
        while True:
            pid = self.bhyve_pid(name)
            if pid is not None:
                return pid
            if time.monotonic() > deadline:
                raise TimeoutError(f"no simulated bhyve for guest {name} after {timeout}s")
            time.sleep(0.005)

    def boots(self, name: str) -> int:
        guest = self._state()["guests"].get(name)
        return 0 if guest is None else guest["boots"]
