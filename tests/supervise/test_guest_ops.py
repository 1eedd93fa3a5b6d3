"""The real GuestOps (host/guests.py) with stand-in loader and bhyve programs."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest
from supervise_fakes import Plan
from supervise_support import wait_for, write_script

from reconciler.errors import HostCommandError
from reconciler.host.bootlog import BOOT_LOG
from reconciler.host.guests import ShimGuestOps, list_processes, recorded_guests
from reconciler.host.runner import DEFAULT_TIMEOUT, Result, SubprocessRunner
from reconciler.policy import ExitStatus
from reconciler.processes import parse_ps
from reconciler.spec import GuestSpec
from reconciler.supervise import BootRecord

SPEC = GuestSpec(name="vm1")


class RecordingRunner(SubprocessRunner):
    """Spawns for real; `run` only records the argv (there is no bhyvectl here)."""

    def __init__(self, status: int = 0) -> None:
        super().__init__()
        self.ran: list[tuple[str, ...]] = []
        self.status = status

    def run(self, argv: Sequence[str], *, timeout: float = DEFAULT_TIMEOUT) -> Result:
        self.ran.append(tuple(argv))
        return Result(
            tuple(argv), self.status, b"", b"" if self.status == 0 else b"vm_open: failed"
        )


@pytest.fixture
def ops(tmp_path: Path) -> ShimGuestOps:
    (tmp_path / "vmm").mkdir()
    return ShimGuestOps(
        "vm1",
        runner=RecordingRunner(),
        run_dir=tmp_path / "run",
        vmm_dir=tmp_path / "vmm",
        processes=lambda: list_processes(SubprocessRunner()),
        wall_clock=lambda: 2_000_000_000.0,
    )


def wait_ended(ops: ShimGuestOps) -> ExitStatus:
    wait_for(lambda: ops.record().exit is not None, "the boot's exit record")
    exit = ops.record().exit
    assert exit is not None
    return exit


def test_spawn_writes_files_runs_the_boot_and_records_it(
    ops: ShimGuestOps, tmp_path: Path, bin_dir: Path
) -> None:
    device_map = tmp_path / "state" / "vm1" / "device.map"
    talker = write_script(tmp_path / "talker", 'echo "bhyve says $*"; exit "$1"\n')
    shim = ops.spawn(
        Plan(
            (str(bin_dir / "exit-with"), str(tmp_path / "trace"), "loader", "0"),
            (str(talker), "0"),
            files=((str(device_map), "(hd0) /vm/a.img\n"),),
        ),
        SPEC,
    )
    assert device_map.read_text() == "(hd0) /vm/a.img\n"
    assert wait_ended(ops) == ExitStatus(0, None, "bhyve")
    rec = ops.record()
    assert rec.shim_pid == shim
    assert rec.bhyve_pid is not None and rec.loader_pid is None
    assert "bhyve says 0" in (ops.dir / BOOT_LOG).read_text()


def test_finished_shim_is_reaped_and_reads_as_dead(
    ops: ShimGuestOps, bin_dir: Path, tmp_path: Path
) -> None:
    shim = ops.spawn(Plan(None, (str(bin_dir / "exit-with"), str(tmp_path / "t"), "b", "3")), SPEC)
    assert wait_ended(ops).meaning == "triple-fault"
    wait_for(lambda: not ops.alive(shim), "the shim to be seen dead")
    with pytest.raises(ChildProcessError):
        os.waitpid(shim, os.WNOHANG)  # already reaped: no zombie left behind


def test_spawn_clears_the_previous_boots_records(
    ops: ShimGuestOps, bin_dir: Path, tmp_path: Path
) -> None:
    ops.spawn(Plan(None, (str(bin_dir / "exit-with"), str(tmp_path / "t"), "b", "4")), SPEC)
    wait_ended(ops)
    ops.set_outcome("crash-loop 1")
    ops.spawn(Plan(None, (str(bin_dir / "sleeper"), str(tmp_path / "t"), "b")), SPEC)
    rec = ops.record()
    assert (rec.exit, rec.outcome) == (None, None)
    wait_for(lambda: ops.record().bhyve_pid is not None, "bhyve.pid")
    shim = ops.record().shim_pid
    assert shim is not None
    assert ops.signal_group(shim, signal.SIGKILL)


def test_group_kill_ends_the_whole_boot(ops: ShimGuestOps, bin_dir: Path, tmp_path: Path) -> None:
    trace = tmp_path / "t"
    shim = ops.spawn(
        Plan(
            (str(bin_dir / "sleeper"), str(trace), "loader"),
            (str(bin_dir / "sleeper"), str(trace), "bhyve"),
        ),
        SPEC,
    )
    wait_for(lambda: ops.record().loader_pid is not None, "loader.pid")
    loader = ops.record().loader_pid
    assert loader is not None and ops.alive(loader) and ops.alive(shim)
    assert ops.signal_group(shim, signal.SIGKILL)
    wait_for(lambda: not ops.alive(shim) and not ops.alive(loader), "the boot to die")
    assert ops.record().exit is None  # the shim died too: nothing recorded


def test_signal_reaches_bhyve_and_the_exit_is_128_plus_n(
    ops: ShimGuestOps, bin_dir: Path, tmp_path: Path
) -> None:
    ops.spawn(Plan(None, (str(bin_dir / "sleeper"), str(tmp_path / "t"), "bhyve")), SPEC)
    wait_for(lambda: ops.record().bhyve_pid is not None, "bhyve.pid")
    bhyve = ops.record().bhyve_pid
    assert bhyve is not None
    assert ops.signal(bhyve, signal.SIGTERM)
    assert wait_ended(ops) == ExitStatus(None, signal.SIGTERM, "bhyve")
    wait_for(lambda: not ops.alive(bhyve), "bhyve to be gone")
    assert not ops.signal(bhyve, signal.SIGTERM)


def test_bhyvectl_argv_and_failures(tmp_path: Path) -> None:
    runner = RecordingRunner()
    ops = ShimGuestOps(
        "vm1", runner=runner, run_dir=tmp_path, vmm_dir=tmp_path, processes=lambda: parse_ps(b"")
    )
    ops.force_poweroff()
    ops.destroy()
    assert runner.ran == [
        ("bhyvectl", "--vm=vm1", "--force-poweroff"),
        ("bhyvectl", "--vm=vm1", "--destroy"),
    ]
    runner.status = 1
    with pytest.raises(HostCommandError) as err:
        ops.destroy()
    assert err.value.status == 1 and err.value.argv == ("bhyvectl", "--vm=vm1", "--destroy")


def test_vm_exists_looks_in_vmm_dir(ops: ShimGuestOps, tmp_path: Path) -> None:
    assert not ops.vm_exists()
    (tmp_path / "vmm" / "vm1").touch()
    assert ops.vm_exists()


def test_outcome_age_forget_and_listing(ops: ShimGuestOps, tmp_path: Path) -> None:
    ops.set_outcome("held")
    (ops.dir / "bhyve.pid").write_text("4242\n")
    os.utime(ops.dir / "bhyve.pid", (2_000_000_000.0 - 75, 2_000_000_000.0 - 75))
    rec = ops.record()
    assert (rec.outcome, rec.bhyve_pid, rec.bhyve_age) == ("held", 4242, 75.0)
    assert recorded_guests(tmp_path / "run") == ["vm1"]
    ops.forget()
    assert recorded_guests(tmp_path / "run") == []
    assert ops.record().outcome is None


@pytest.mark.parametrize("text", ["bhyve", "bhyve x", "qemu 0", "loader -1"])
def test_a_garbled_exit_line_reads_as_an_unknown_end(ops: ShimGuestOps, text: str) -> None:
    ops.dir.mkdir(parents=True)
    (ops.dir / "exit").write_text(text + "\n")
    assert ops.record().exit == ExitStatus(None, None)


def test_no_record_at_all(ops: ShimGuestOps) -> None:
    rec = ops.record()
    assert (rec.shim_pid, rec.exit, rec.outcome, rec.bhyve_age) == (None, None, None, None)
    assert not ops.alive(0)


def test_a_recorded_pid_is_trusted_only_when_it_is_this_guests(
    ops: ShimGuestOps, tmp_path: Path, bin_dir: Path
) -> None:
    shim = ops.spawn(Plan(None, (str(bin_dir / "sleeper"), str(tmp_path / "t"), "bhyve")), SPEC)
    stranger = subprocess.Popen(["sleep", "30"])
    try:
        rec = BootRecord(shim_pid=shim, loader_pid=stranger.pid, bhyve_pid=stranger.pid)
        kept = ops.trusted(rec)
        assert (kept.shim_pid, kept.loader_pid, kept.bhyve_pid) == (shim, None, None)
        # The same pid under another guest's record directory is not this guest's shim.
        other = ShimGuestOps(
            "vm2",
            runner=SubprocessRunner(),
            run_dir=tmp_path / "run",
            vmm_dir=tmp_path / "vmm",
            processes=lambda: list_processes(SubprocessRunner()),
        )
        assert other.trusted(BootRecord(shim_pid=shim)).shim_pid is None
    finally:
        stranger.kill()
        stranger.wait()
        ops.signal_group(shim, signal.SIGKILL)
