"""`SimulatedHost`: lays out a simulated FreeBSD host in a directory and lets tests drive it.

Owns the on-disk layout (ROOT/bin wrappers, ROOT/dev, firmware, ROOT/.sim state) and the
test-side controls: the command log, fault injection, inspection of the state, and the host's
settings (release, memory, zvol node timing). Guest and loader controls are in controls.py. It
never plays a tool itself; the tools are the wrappers in `bin_dir`, run through PATH exactly as
the FreeBSD driver runs FreeBSD's.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from reconciler.facts import Interface, InterfaceKind
from reconciler.sim import state as st
from reconciler.sim.controls import GuestControls
from reconciler.sim.procs import bhyve_pid

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
    "makefs",
)
FIRMWARE = ("BHYVE_UEFI.fd", "BHYVE_UEFI_VARS.fd")
_PACKAGE_PARENT = str(Path(__file__).resolve().parent.parent.parent)


@dataclass(frozen=True)
class CommandRecord:
    """One tool run as the log saw it; `status` is None for a bhyve that is still its guest."""

    argv: tuple[str, ...]
    status: int | None


class SimulatedHost(GuestControls):
    """A FreeBSD host at the command boundary, kept in `root`."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.bin_dir = self.root / "bin"
        self.vmm_dir = self.root / "dev" / "vmm"
        self._sim_dir = self.root / st.SIM_DIR
        self._log = self._sim_dir / "commands.log"

    # -- set-up -----------------------------------------------------------------------------

    def setup(
        self,
        physical: Sequence[str] = ("igb0", "em0"),
        *,
        release: str = st.DEFAULT_RELEASE,
        compiled_in: Sequence[str] = st.GENERIC_DEVICES,
        physmem: int = st.DEFAULT_PHYSMEM,
    ) -> SimulatedHost:
        """Create the layout and, on first use only, a fresh host's state.

        `release` is kern.osrelease, which release-dependent behaviours follow; `compiled_in`
        names the devices of if_tuntap, if_bridge and nmdm the kernel has built in (GENERIC:
        if_tuntap only); `physmem` is hw.physmem, the memory guests' VMs draw on.
        """
        unknown = set(compiled_in) - set(st.OPTIONAL_DEVICES)
        if unknown:
            raise ValueError(f"setup: no such optional device: {', '.join(sorted(unknown))}")
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
        self._provide_cu()
        if not (self._sim_dir / "state").exists():
            with open(self._sim_dir / "lock", "a"):
                pass
            state = st.default_state(tuple(physical), release, tuple(compiled_in), physmem)
            st.write_state(str(self._sim_dir), state)
        else:
            with st.Store(str(self.root)) as store:
                st.upgrade_state(store.state)
                store.dirty = True
        self._log.touch()
        return self

    def _write_wrapper(self, tool: str) -> None:
        # -S: no site-packages to scan; -E: PYTHONDONTWRITEBYTECODE would otherwise make
        # every tool run recompile the sim's modules. makefs alone needs site-packages, for
        # pycdlib.
        flags = "-E" if tool == "makefs" else "-SE"
        text = (
            f"#!{sys.executable} {flags}\n"
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

    def _provide_cu(self) -> None:
        """A simulated cu(1) when the machine has none, so `console` works for anyone."""
        wrapper = self.bin_dir / "cu"
        others = os.pathsep.join(
            p for p in os.environ.get("PATH", "").split(os.pathsep) if Path(p) != self.bin_dir
        )
        if shutil.which("cu", path=others) is not None:
            wrapper.unlink(missing_ok=True)
            return
        text = (
            f"#!{sys.executable} -SE\n"
            "import sys\n"
            f"sys.path.insert(0, {_PACKAGE_PARENT!r})\n"
            "from reconciler.sim.cu import main\n"
            "sys.exit(main(sys.argv[1:]))\n"
        )
        if not wrapper.exists() or wrapper.read_text() != text:
            tmp = wrapper.with_suffix(".tmp")
            tmp.write_text(text)
            tmp.chmod(0o755)
            tmp.replace(wrapper)

    def open_console(self, name: str, peer: str) -> Path:
        """What `bhyve-reconciler console` does here before it runs cu: the path of guest
        `name`'s console B side `peer` (an nmdm device) under the root, its getty started for
        the session. LookupError when the guest or its console is not there."""
        from reconciler.sim.console import open_console

        return Path(open_console(str(self.root), name, peer, str(self.path(peer))))

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

    # -- host settings -----------------------------------------------------------------------

    def _change(self, change: str, value: object) -> None:
        with st.Store(str(self.root)) as store:
            state = store.state
            if change == "release":
                state["sysctl"]["kern.osrelease"] = str(value)
            elif change == "physmem":
                state["sysctl"]["hw.physmem"] = str(value)
            elif change == "zvol_delay":
                state["zvol_delay"] = value  # type: ignore[typeddict-item]
            store.dirty = True

    def set_release(self, release: str) -> None:
        """kern.osrelease, e.g. "13.4-RELEASE", "14.1-RELEASE", "15.0-CURRENT"."""
        self._change("release", release)

    def set_physmem(self, size: int) -> None:
        """hw.physmem: VMs' memory must fit in it (less what existing VMs already hold)."""
        self._change("physmem", size)

    def delay_zvol_nodes(self, seconds: float | None) -> None:
        """Later zvols' /dev/zvol nodes appear `seconds` after `zfs create`/`zfs clone`
        returns; math.inf holds them until release_zvol_nodes(); None makes them immediate."""
        self._change("zvol_delay", seconds)

    def release_zvol_nodes(self) -> list[str]:
        """Publish every held /dev/zvol node; returns the volumes' names."""
        from reconciler.sim import zvol

        with st.Store(str(self.root)) as store:
            released = zvol.release_pending(str(self.root), store.state)
            store.dirty = True
        return released

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
                opened_by=None if guest is None else bhyve_pid(str(self.root), guest),
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

    def datasets(self) -> dict[str, str]:
        """Every dataset's type: filesystem, volume or snapshot."""
        return {name: d["type"] for name, d in self._state()["datasets"].items()}
