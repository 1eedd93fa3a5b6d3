"""`bhyve-reconciler console NAME` on the simulated host, in a real terminal (tmux): the guest's
boot banner and `login:` prompt, a typed line echoed back, and `~.` to leave, as with cu on
FreeBSD. tmux is a test requirement (.ci/run installs it): no skip hides its absence."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_harness import Harness, guest_toml

WAIT = 20.0


class Tmux:
    """One tmux server on its own socket, one window running one command."""

    def __init__(self, socket: Path) -> None:
        tmux = shutil.which("tmux")
        assert tmux is not None, "tmux is needed for the real-terminal test (.ci/run installs it)"
        self.argv = [tmux, "-S", str(socket)]

    def run(self, *args: str) -> str:
        done = subprocess.run(
            [*self.argv, *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
            env={"PATH": "/usr/bin:/bin", "TERM": "xterm"},
        )
        return done.stdout

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "console")

    def wait_for(self, text: str) -> str:
        deadline = time.monotonic() + WAIT
        while True:
            screen = self.screen()
            if text in screen:
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"never saw {text!r} on the screen:\n{screen}")
            time.sleep(0.1)


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    terminal = Tmux(tmp_path / "tmux.sock")
    try:
        yield terminal
    finally:
        subprocess.run([*terminal.argv, "kill-server"], capture_output=True, check=False)


def test_console_in_a_terminal_shows_login_echoes_and_leaves_on_tilde_dot(
    harness: Harness, tmux: Tmux
) -> None:
    harness.put("vm1", guest_toml("vm1"))
    harness.start()
    harness.wait_running("vm1")
    console = shlex.join([*harness.base_argv(), "console", "vm1"])
    # The pane stays after cu exits, to show how it ended.
    tmux.run(
        "new-session", "-d", "-s", "console", "-x", "120", "-y", "40",
        f"{console}; echo console-exited-$?; sleep 600",
    )  # fmt: skip

    screen = tmux.wait_for("login:")
    assert "Connected" in screen
    assert "FreeBSD 14.1-RELEASE GENERIC amd64" in screen
    assert "FreeBSD/amd64 (vm1) (ttyu0)" in screen

    tmux.run("send-keys", "-t", "console", "beastie", "Enter")
    screen = tmux.wait_for("Password:")
    assert "login: beastie" in screen.splitlines()

    tmux.run("send-keys", "-t", "console", "Enter", "~.")
    screen = tmux.wait_for("console-exited-")
    lines = screen.splitlines()
    assert "[EOT]" in lines
    assert "console-exited-0" in lines
    assert harness.state("vm1") == "running"  # leaving the console leaves the guest alone


def test_console_of_a_guest_that_is_not_running_says_so(harness: Harness) -> None:
    harness.put("vm1", guest_toml("vm1", extra='state = "stopped"'))
    harness.start()
    harness.wait_state("vm1", "stopped")

    console = harness.cli("console", "vm1")

    assert console.returncode == 1
    assert console.stderr == (
        "bhyve-reconciler: vm1 is not running on the simulated host: no console to join\n"
    )
