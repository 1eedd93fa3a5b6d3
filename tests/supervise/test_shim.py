"""The boot shim (host/shim.sh) run for real with stand-in loader and bhyve programs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from importlib.resources import files
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from supervise_support import wait_for

SHIM = str(files("reconciler.host").joinpath("shim.sh"))


def run_shim(run: Path, loader: list[str], bhyve: list[str]) -> subprocess.CompletedProcess[bytes]:
    argv = ["/bin/sh", SHIM, str(run), str(len(loader)), *loader, *bhyve]
    return subprocess.run(argv, capture_output=True, timeout=30, check=False)


def start_shim(run: Path, loader: list[str], bhyve: list[str]) -> subprocess.Popen[bytes]:
    argv = ["/bin/sh", SHIM, str(run), str(len(loader)), *loader, *bhyve]
    return subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )


def read(path: Path) -> str:
    return path.read_text().strip()


def test_loader_then_bhyve_and_the_records(tmp_path: Path, bin_dir: Path) -> None:
    trace = tmp_path / "trace"
    done = run_shim(
        tmp_path,
        [str(bin_dir / "exit-with"), str(trace), "loader", "0"],
        [str(bin_dir / "exit-with"), str(trace), "bhyve", "0"],
    )
    assert done.returncode == 0
    assert trace.read_text().splitlines() == ["loader", "bhyve"]
    assert read(tmp_path / "exit") == "bhyve 0"
    assert int(read(tmp_path / "shim.pid")) > 0
    assert int(read(tmp_path / "bhyve.pid")) > 0
    assert not (tmp_path / "loader.pid").exists()
    assert not list(tmp_path.glob("*.tmp"))


def test_failed_loader_ends_the_boot(tmp_path: Path, bin_dir: Path) -> None:
    trace = tmp_path / "trace"
    done = run_shim(
        tmp_path,
        [str(bin_dir / "exit-with"), str(trace), "loader", "2"],
        [str(bin_dir / "exit-with"), str(trace), "bhyve", "0"],
    )
    assert done.returncode == 2
    assert trace.read_text().splitlines() == ["loader"]
    assert read(tmp_path / "exit") == "loader 2"
    assert not (tmp_path / "bhyve.pid").exists()


def test_no_loader_runs_bhyve_alone(tmp_path: Path, bin_dir: Path) -> None:
    trace = tmp_path / "trace"
    done = run_shim(tmp_path, [], [str(bin_dir / "exit-with"), str(trace), "bhyve", "3"])
    assert done.returncode == 3
    assert trace.read_text().splitlines() == ["bhyve"]
    assert read(tmp_path / "exit") == "bhyve 3"


def test_missing_bhyve_is_recorded_as_127(tmp_path: Path) -> None:
    done = run_shim(tmp_path, [], [str(tmp_path / "no-such-bhyve")])
    assert done.returncode == 127
    assert read(tmp_path / "exit") == "bhyve 127"


def test_pids_are_live_and_signals_are_recorded_as_128_plus_n(
    tmp_path: Path, bin_dir: Path
) -> None:
    trace = tmp_path / "trace"
    shim = start_shim(tmp_path, [], [str(bin_dir / "sleeper"), str(trace), "bhyve"])
    wait_for(lambda: (tmp_path / "bhyve.pid").exists(), "bhyve.pid")
    bhyve = int(read(tmp_path / "bhyve.pid"))
    assert int(read(tmp_path / "shim.pid")) == shim.pid
    assert os.getpgid(bhyve) == shim.pid  # one process group: the whole boot can be killed
    os.kill(bhyve, signal.SIGTERM)
    assert shim.wait(timeout=10) == 128 + signal.SIGTERM
    assert read(tmp_path / "exit") == f"bhyve {128 + signal.SIGTERM}"


def test_loader_pid_is_recorded_while_it_runs(tmp_path: Path, bin_dir: Path) -> None:
    trace = tmp_path / "trace"
    shim = start_shim(
        tmp_path,
        [str(bin_dir / "sleeper"), str(trace), "loader"],
        [str(bin_dir / "exit-with"), str(trace), "bhyve", "0"],
    )
    wait_for(lambda: (tmp_path / "loader.pid").exists(), "loader.pid")
    wait_for(lambda: trace.exists(), "the loader to run")
    os.kill(int(read(tmp_path / "loader.pid")), signal.SIGKILL)
    assert shim.wait(timeout=10) == 128 + signal.SIGKILL
    assert read(tmp_path / "exit") == f"loader {128 + signal.SIGKILL}"
    assert trace.read_text().splitlines() == ["loader"]


def test_shim_outlives_a_parent_killed_with_sigkill(tmp_path: Path, bin_dir: Path) -> None:
    trace = tmp_path / "trace"
    # A throwaway "daemon" that starts the shim through the real Runner, then is SIGKILLed.
    parent_code = (
        "import sys, time\n"
        "from reconciler.host.runner import SubprocessRunner\n"
        "p = SubprocessRunner().spawn(sys.argv[1:])\n"
        "print(p.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    argv = ["/bin/sh", SHIM, str(tmp_path), "0", str(bin_dir / "sleeper"), str(trace), "bhyve"]
    parent = subprocess.Popen(
        [sys.executable, "-c", parent_code, *argv],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert parent.stdout is not None
    shim_pid = int(parent.stdout.readline())
    wait_for(lambda: (tmp_path / "bhyve.pid").exists(), "bhyve.pid")
    parent.kill()
    parent.wait(timeout=10)
    bhyve = int(read(tmp_path / "bhyve.pid"))
    os.kill(bhyve, 0)  # raises if bhyve went down with its daemon
    assert not (tmp_path / "exit").exists()
    os.kill(bhyve, signal.SIGTERM)
    wait_for(lambda: (tmp_path / "exit").exists(), "the orphaned shim to record the exit")
    assert read(tmp_path / "exit") == f"bhyve {128 + signal.SIGTERM}"
    assert int(read(tmp_path / "shim.pid")) == shim_pid


AWKWARD = [
    "a b",
    "  lead",
    "it's",
    'say "hi"',
    "$(touch pwned)",
    "`touch pwned`",
    "*",
    "?",
    "[a]",
    "~",
    "$HOME",
    "a;b",
    "a|b",
    "x\ny",
    "\\n",
    "-n",
    "--",
    "",
    "-e",
    "%s",
]


def test_argv_passes_through_verbatim(tmp_path: Path, bin_dir: Path) -> None:
    (tmp_path / "decoy").touch()  # something for an unquoted * to expand to
    loader_out, bhyve_out = tmp_path / "loader.argv", tmp_path / "bhyve.argv"
    loader_args, bhyve_args = AWKWARD, list(reversed(AWKWARD))
    done = run_shim(
        tmp_path,
        [str(bin_dir / "dump-argv"), str(loader_out), *loader_args],
        [str(bin_dir / "dump-argv"), str(bhyve_out), *bhyve_args],
    )
    assert done.returncode == 0
    assert loader_out.read_bytes().split(b"\0")[:-1] == [a.encode() for a in loader_args]
    assert bhyve_out.read_bytes().split(b"\0")[:-1] == [a.encode() for a in bhyve_args]
    assert not list(tmp_path.rglob("pwned"))


ARG = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\0"), max_size=12)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(loader_args=st.lists(ARG, max_size=5), bhyve_args=st.lists(ARG, max_size=5))
def test_any_argv_splits_at_nloader_verbatim(
    tmp_path: Path, bin_dir: Path, loader_args: list[str], bhyve_args: list[str]
) -> None:
    loader_out, bhyve_out = tmp_path / "l.argv", tmp_path / "b.argv"
    done = run_shim(
        tmp_path,
        [str(bin_dir / "dump-argv"), str(loader_out), *loader_args],
        [str(bin_dir / "dump-argv"), str(bhyve_out), *bhyve_args],
    )
    assert done.returncode == 0
    assert loader_out.read_bytes().split(b"\0")[:-1] == [a.encode() for a in loader_args]
    assert bhyve_out.read_bytes().split(b"\0")[:-1] == [a.encode() for a in bhyve_args]
