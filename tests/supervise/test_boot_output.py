"""A boot's own output: what this boot's loader and bhyve printed, read back from boot.log
(which keeps earlier boots too) for the supervisor to judge an exit by; bounded in size."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from supervise_support import wait_for, write_script

from reconciler.host.bootlog import BOOT_LOG
from reconciler.host.guests import BOOT_OUTPUT_LIMIT, ShimGuestOps, list_processes
from reconciler.host.runner import SubprocessRunner
from reconciler.spec import GuestSpec

SPEC = GuestSpec(name="vm1")


@dataclass(frozen=True)
class Plan:
    loader: tuple[str, ...] | None
    bhyve: tuple[str, ...]
    files: tuple[tuple[str, str], ...] = ()


@pytest.fixture
def ops(tmp_path: Path) -> ShimGuestOps:
    (tmp_path / "vmm").mkdir()
    return ShimGuestOps(
        "vm1",
        runner=SubprocessRunner(),
        run_dir=tmp_path / "run",
        vmm_dir=tmp_path / "vmm",
        processes=lambda: list_processes(SubprocessRunner()),
    )


def boot(ops: ShimGuestOps, tmp_path: Path, says: str, status: int = 1) -> None:
    program = write_script(tmp_path / f"says-{status}", 'printf "%s\\n" "$1" >&2; exit "$2"\n')
    ops.spawn(Plan(None, (str(program), says, str(status))), SPEC)
    wait_for(lambda: ops.record().exit is not None, "the boot's exit record")


def test_only_this_boots_part_of_the_log_is_read(ops: ShimGuestOps, tmp_path: Path) -> None:
    boot(ops, tmp_path, "vm_run error -1, errno 6")
    assert ops.boot_output() == b"vm_run error -1, errno 6\n"
    boot(ops, tmp_path, "a clean power-off")
    assert ops.boot_output() == b"a clean power-off\n"
    # The log keeps both, each after the `--- WHEN boot: COMMAND` line `logs` shows.
    lines = (ops.dir / BOOT_LOG).read_bytes().splitlines()
    assert [line for line in lines if not line.startswith(b"--- ")] == [
        b"vm_run error -1, errno 6",
        b"a clean power-off",
    ]
    assert [line.startswith(b"--- ") for line in lines] == [True, False, True, False]


def test_a_long_boot_log_is_read_from_its_end_only(ops: ShimGuestOps, tmp_path: Path) -> None:
    noisy = write_script(
        tmp_path / "noisy",
        f'head -c {3 * BOOT_OUTPUT_LIMIT} /dev/zero | tr "\\\\0" x; echo; echo "the end"; exit 1\n',
    )
    ops.spawn(Plan(None, (str(noisy),)), SPEC)
    wait_for(lambda: ops.record().exit is not None, "the boot's exit record")
    output = ops.boot_output()
    assert len(output) == BOOT_OUTPUT_LIMIT
    assert output.endswith(b"x\nthe end\n")


def test_no_boot_no_output(ops: ShimGuestOps) -> None:
    assert ops.boot_output() == b""
