"""The rc.d script, run by sh against a stand-in for /etc/rc.subr: the daemon(8) command line it
starts, and which process reload and detach signal (real processes, real signals)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).parent
SCRIPT = HERE.parents[1] / "rc.d" / "bhyve_reconciler"
WAIT = 5.0  # upper bound for a signal to land; never an expectation of speed


@dataclass
class Rc:
    script: Path
    conf: Path
    record: Path

    def run(self, command: str, rc_conf: str) -> subprocess.CompletedProcess[str]:
        self.conf.write_text(rc_conf)
        env = {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "RC_CONF": str(self.conf),
            "RC_RECORD": str(self.record),
        }
        return subprocess.run(
            ["sh", str(self.script), command],
            capture_output=True,
            text=True,
            env=env,
            timeout=30,
            check=False,
        )

    def argv(self) -> list[str]:
        return self.record.read_text().splitlines()


@pytest.fixture
def rc(tmp_path: Path) -> Rc:
    text = SCRIPT.read_text()
    assert text.count(". /etc/rc.subr\n") == 1
    script = tmp_path / "bhyve_reconciler"
    script.write_text(text.replace(". /etc/rc.subr\n", f". {HERE / 'fake_rc.subr'}\n"))
    return Rc(script, tmp_path / "rc.conf", tmp_path / "started")


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "etc" / "bhyve-reconciler.toml"
    path.parent.mkdir()
    path.write_text('conf_dir = "/vm/conf.d"\n')
    return path


def test_the_script_parses_as_posix_sh() -> None:
    done = subprocess.run(["sh", "-n", str(SCRIPT)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_the_script_is_executable_as_rc_d_requires() -> None:
    assert os.access(SCRIPT, os.X_OK)


def test_rcorder_keywords() -> None:
    keywords = dict(re.findall(r"^# (PROVIDE|REQUIRE|KEYWORD): (.*)$", SCRIPT.read_text(), re.M))
    assert keywords["PROVIDE"].split() == ["bhyve_reconciler"]
    assert set(keywords["REQUIRE"].split()) == {"LOGIN", "NETWORKING"}
    assert set(keywords["KEYWORD"].split()) == {"shutdown", "nojail"}


def test_start_runs_the_reconciler_under_daemon8(rc: Rc, config: Path) -> None:
    done = rc.run("start", f'bhyve_reconciler_enable="YES"\nbhyve_reconciler_config="{config}"\n')
    assert done.returncode == 0, done.stderr
    argv = rc.argv()
    assert argv[0] == "/usr/sbin/daemon"
    program = argv.index("/usr/local/bin/bhyve-reconciler")
    supervisor, reconciler = argv[1:program], argv[program + 1 :]

    def option(flag: str) -> str:
        return supervisor[supervisor.index(flag) + 1]

    assert option("-P") == "/var/run/bhyve_reconciler.pid"
    assert option("-p") == "/var/run/bhyve_reconciler.child.pid"
    assert option("-T") == "bhyve_reconciler"
    assert option("-t") == "bhyve_reconciler"
    assert {"-r", "-S", "-f"} <= set(supervisor)
    assert reconciler == ["--config", str(config), "run"]


def test_flags_reach_the_reconciler_before_run_and_not_daemon8(rc: Rc, config: Path) -> None:
    done = rc.run(
        "start",
        'bhyve_reconciler_enable="YES"\n'
        f'bhyve_reconciler_config="{config}"\n'
        'bhyve_reconciler_flags="--conf-dir /vm/conf.d"\n'
        'bhyve_reconciler_binary="/usr/local/venv/bin/bhyve-reconciler"\n',
    )
    assert done.returncode == 0, done.stderr
    argv = rc.argv()
    program = argv.index("/usr/local/venv/bin/bhyve-reconciler")
    assert "--conf-dir" not in argv[:program]
    assert argv[program + 1 :] == ["--config", str(config), "--conf-dir", "/vm/conf.d", "run"]


def test_start_puts_packaged_tools_on_path(rc: Rc, config: Path) -> None:
    rc.run("start", f'bhyve_reconciler_enable="YES"\nbhyve_reconciler_config="{config}"\n')
    path = Path(f"{rc.record}.env").read_text().strip().split(":")
    assert "/usr/local/sbin" in path
    assert path.index("/usr/sbin") < path.index("/usr/local/sbin")


@pytest.mark.parametrize("enable", ["NO", "no", "off", "0"])
def test_a_disabled_service_starts_nothing(rc: Rc, config: Path, enable: str) -> None:
    rc.run("start", f'bhyve_reconciler_enable="{enable}"\nbhyve_reconciler_config="{config}"\n')
    assert not rc.record.exists()


def test_an_unset_enable_defaults_to_disabled(rc: Rc, config: Path) -> None:
    rc.run("start", f'bhyve_reconciler_config="{config}"\n')
    assert not rc.record.exists()


def test_start_refuses_without_the_default_config_file(rc: Rc) -> None:
    done = rc.run("start", 'bhyve_reconciler_enable="YES"\n')
    assert done.returncode != 0
    assert "/usr/local/etc/bhyve-reconciler.toml" in done.stderr
    assert not rc.record.exists()


# reload and detach signal the reconciler (daemon(8)'s child), never daemon(8) itself.


@dataclass
class Supervised:
    pidfile: Path
    child_pidfile: Path
    logs: Path
    rc_conf: str

    def log(self, role: str) -> list[str]:
        path = self.logs / f"{role}.log"
        return path.read_text().split() if path.exists() else []


def wait_until(condition: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@pytest.fixture
def supervised(tmp_path: Path, config: Path) -> Iterator[Supervised]:
    run = tmp_path / "run"
    run.mkdir()
    pidfile, child_pidfile = run / "bhyve_reconciler.pid", run / "bhyve_reconciler.child.pid"
    fake = str(HERE / "fake_daemon.py")
    argv = [sys.executable, fake, "supervisor", str(pidfile), str(child_pidfile), str(run)]
    supervisor = subprocess.Popen(argv)
    try:
        assert wait_until(child_pidfile.exists), "the stand-in daemon did not start"
        child = int(child_pidfile.read_text())
        rc_conf = (
            'bhyve_reconciler_enable="YES"\n'
            f'bhyve_reconciler_config="{config}"\n'
            f'bhyve_reconciler_pidfile="{pidfile}"\n'
            f'bhyve_reconciler_child_pidfile="{child_pidfile}"\n'
        )
        yield Supervised(pidfile, child_pidfile, run, rc_conf)
    finally:
        if child_pidfile.exists():
            os.kill(child, signal.SIGKILL)
        supervisor.kill()
        supervisor.wait()


@pytest.mark.parametrize(("command", "sent"), [("reload", "SIGHUP"), ("detach", "SIGUSR1")])
def test_reload_and_detach_signal_the_child(
    rc: Rc, supervised: Supervised, command: str, sent: str
) -> None:
    done = rc.run(command, supervised.rc_conf)
    assert done.returncode == 0, done.stdout + done.stderr
    assert wait_until(lambda: supervised.log("child") == [sent])
    assert supervised.log("supervisor") == []


def test_reload_refuses_a_stale_child_pidfile(rc: Rc, supervised: Supervised) -> None:
    stranger_pidfile = supervised.logs / "stranger.pid"
    stranger_logs = supervised.logs / "stranger"
    stranger_logs.mkdir()
    fake = str(HERE / "fake_daemon.py")
    argv = [sys.executable, fake, "child", str(stranger_pidfile), str(stranger_logs)]
    stranger = subprocess.Popen(argv)
    try:
        assert wait_until(stranger_pidfile.exists)
        # the child pidfile now names a live process that daemon(8) did not spawn
        supervised.child_pidfile.write_text(stranger_pidfile.read_text())
        done = rc.run("reload", supervised.rc_conf)
        assert done.returncode != 0
        assert "not running" in done.stdout
        # a later USR1 is logged after any HUP that had been sent
        stranger.send_signal(signal.SIGUSR1)
        log = stranger_logs / "child.log"
        assert wait_until(lambda: log.exists() and "SIGUSR1" in log.read_text())
        assert log.read_text().split() == ["SIGUSR1"]
    finally:
        stranger.kill()
        stranger.wait()


def test_reload_without_a_running_service_says_so(rc: Rc, config: Path, tmp_path: Path) -> None:
    done = rc.run(
        "reload",
        'bhyve_reconciler_enable="YES"\n'
        f'bhyve_reconciler_config="{config}"\n'
        f'bhyve_reconciler_pidfile="{tmp_path / "absent.pid"}"\n'
        f'bhyve_reconciler_child_pidfile="{tmp_path / "absent.child.pid"}"\n',
    )
    assert done.returncode != 0
    assert "not running" in done.stdout


# stop waits for the reconciler itself, whichever daemon(8) supervises it (reference §8.5).


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def under_init(
    tmp_path: Path, config: Path, request: pytest.FixtureRequest
) -> Iterator[Supervised]:
    """daemon(8) (of the release `request.param` names) and the reconciler, under init."""
    run = tmp_path / "run"
    run.mkdir()
    pidfile, child_pidfile = run / "bhyve_reconciler.pid", run / "bhyve_reconciler.child.pid"
    fake = str(HERE / "fake_daemon.py")
    mode = "bails" if request.param == "13.0-13.2" else "waits"
    argv = [sys.executable, fake, "init", str(pidfile), str(child_pidfile), str(run), mode]
    init = subprocess.Popen(argv)
    try:
        assert wait_until(child_pidfile.exists), "the stand-in daemon did not start"
        rc_conf = (
            'bhyve_reconciler_enable="YES"\n'
            f'bhyve_reconciler_config="{config}"\n'
            f'bhyve_reconciler_pidfile="{pidfile}"\n'
            f'bhyve_reconciler_child_pidfile="{child_pidfile}"\n'
        )
        yield Supervised(pidfile, child_pidfile, run, rc_conf)
    finally:
        for path in (child_pidfile, pidfile):
            with contextlib.suppress(OSError, ValueError):
                os.kill(int(path.read_text()), signal.SIGKILL)
        init.wait(timeout=10)


@pytest.mark.parametrize("under_init", ["13.0-13.2", "13.3+"], indirect=True)
def test_stop_returns_only_once_the_reconciler_has_exited(rc: Rc, under_init: Supervised) -> None:
    supervisor = int(under_init.pidfile.read_text())
    child = int(under_init.child_pidfile.read_text())

    done = rc.run("stop", under_init.rc_conf)

    assert done.returncode == 0, done.stdout + done.stderr
    assert not alive(supervisor)
    assert not alive(child), "stop returned while the reconciler was still stopping guests"
    assert under_init.log("supervisor") == ["SIGTERM"]
    assert under_init.log("child") == ["SIGTERM"]  # signalled once, by daemon(8) alone
