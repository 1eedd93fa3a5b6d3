"""The simulated serial console: an nmdm pair per guest whose B side a person opens, a guest
that prints its boot banner and answers at `login:`, and a cu(1) that leaves on `~.`."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import threading
import time
import tty
from pathlib import Path

import pytest
from sim_helpers import GUEST, HANDBOOK_ARGV, LOAD_ARGV, Boot, Run, wait_running

from reconciler.sim import SimulatedHost
from reconciler.sim import console as console_module
from reconciler.sim.console import Getty
from reconciler.sim.cu import Escapes

A_SIDE = f"/dev/nmdm-{GUEST}.1A"
B_SIDE = f"/dev/nmdm-{GUEST}.1B"
NMDM_ARGV = tuple(f"com1,{A_SIDE}" if a == "com1,stdio" else a for a in HANDBOOK_ARGV)


def read_until(fd: int, wanted: bytes, limit: float = 10.0) -> bytes:
    """What the console shows until `wanted` appears; fails after `limit` seconds."""
    seen = b""
    deadline = time.monotonic() + limit
    while wanted not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"never saw {wanted!r}; saw {seen!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            seen += os.read(fd, 4096)
    return seen


def test_getty_echoes_the_login_name_and_not_the_password() -> None:
    getty = Getty("web")
    assert getty.prompt() == b"\r\nFreeBSD/amd64 (web) (ttyu0)\r\n\r\nlogin: "
    assert getty.feed(b"roox\x7ft") == b"roox\b \bt"
    assert getty.feed(b"\r") == b"\r\nPassword:"
    assert getty.feed(b"secret") == b""
    assert getty.feed(b"\r") == b"\r\nLogin incorrect\r\nlogin: "
    assert getty.feed(b"\r") == b"\r\nlogin: "  # an empty name: the prompt again
    assert getty.feed(b"\x03\x1b") == b""  # other control characters are ignored


def test_cu_escapes_only_at_the_beginning_of_a_line() -> None:
    keys = Escapes()
    assert keys.feed(b"a~.b") == (b"a~.b", b"")  # not at the beginning: sent as typed
    assert keys.feed(b"\r~~") == (b"\r~", b"")  # ~~ sends one ~
    assert keys.feed(b"\r~x") == (b"\r~x", b"")  # ~ and anything else: both are sent
    assert not keys.done
    assert keys.feed(b"\r~.rest") == (b"\r", b"~")  # ~. drops the connection
    assert keys.done
    fresh = Escapes()
    assert fresh.feed(b"~.") == (b"", b"~") and fresh.done  # the start is a line's beginning


@pytest.fixture
def nmdm(ready: SimulatedHost, tool: Run) -> SimulatedHost:
    assert tool("kldload", "nmdm").returncode == 0
    return ready


def boot_guest(host: SimulatedHost, boot: Boot, tool: Run) -> tuple[subprocess.Popen[str], int]:
    assert tool(*LOAD_ARGV[:2], A_SIDE, *LOAD_ARGV[3:]).returncode == 0
    process = boot(*NMDM_ARGV)
    return process, wait_running(host, process, GUEST)


def test_a_guest_prints_its_banner_on_its_console_and_answers_at_login(
    nmdm: SimulatedHost, boot: Boot, tool: Run
) -> None:
    process, pid = boot_guest(nmdm, boot, tool)
    link = nmdm.path(B_SIDE)
    assert os.readlink(link).startswith("/dev/pts/")

    path = nmdm.open_console(GUEST, B_SIDE)
    assert path == link
    console = os.open(path, os.O_RDWR | os.O_NOCTTY)
    try:
        shown = read_until(console, b"login: ")
        assert b"FreeBSD 14.1-RELEASE GENERIC amd64\r\n" in shown
        assert shown.endswith(b"FreeBSD/amd64 (guestname) (ttyu0)\r\n\r\nlogin: ")
        os.write(console, b"root\r")
        assert read_until(console, b"Password:") == b"root\r\nPassword:"
        os.write(console, b"toor\r")
        assert read_until(console, b"login: ") == b"\r\nLogin incorrect\r\nlogin: "
    finally:
        os.close(console)
    # The guest is still the same process, and still honours the power button.
    assert nmdm.bhyve_pid(GUEST) == pid
    os.kill(pid, signal.SIGTERM)
    assert process.wait(timeout=10) == 1
    assert not os.path.lexists(link)  # its console went with it


def test_the_getty_ends_with_the_session(nmdm: SimulatedHost, boot: Boot, tool: Run) -> None:
    boot_guest(nmdm, boot, tool)
    console = os.open(nmdm.open_console(GUEST, B_SIDE), os.O_RDWR | os.O_NOCTTY)
    read_until(console, b"login: ")
    getty = getty_pids(nmdm.root)
    assert len(getty) == 1
    os.close(console)
    deadline = time.monotonic() + 10
    while getty_pids(nmdm.root):
        assert time.monotonic() < deadline, "the getty outlived its session"
        time.sleep(0.05)


def test_a_session_that_ends_before_the_getty_looks_again_still_ends_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The getty's process may be slow to look (a loaded machine): a person who opened the B
    side, read the prompt and left meanwhile must still end the session, not leave the getty
    waiting out WAIT_FOR_OPEN for a session that already happened."""
    master, slave = os.openpty()
    tty.setraw(slave)  # as nmdm.open_pair leaves a console's B side
    b_side = os.ttyname(slave)
    os.close(slave)  # nobody on the B side yet
    left = threading.Event()
    real_write = console_module.write_all

    def write_then_stall(fd: int, data: bytes) -> None:
        real_write(fd, data)
        assert left.wait(timeout=10), "the test never left the session"  # the slow getty

    monkeypatch.setattr(console_module, "write_all", write_then_stall)
    monkeypatch.setattr(console_module, "WAIT_FOR_OPEN", 600.0)
    getty = threading.Thread(target=console_module.session, args=(master, GUEST), daemon=True)
    getty.start()
    try:
        person = os.open(b_side, os.O_RDWR | os.O_NOCTTY)
        try:
            assert read_until(person, b"login: ").endswith(b"(ttyu0)\r\n\r\nlogin: ")
        finally:
            os.close(person)
        left.set()
        getty.join(timeout=10)
        assert not getty.is_alive(), "the getty missed the session and waits for another"
    finally:
        left.set()
        os.close(master)


def getty_pids(root: Path) -> list[int]:
    """Live console getty processes of guests on this host (Linux /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            state = Path(f"/proc/{entry}/stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            continue
        ours = b"reconciler.sim.console" in cmdline and str(root).encode() in cmdline
        if ours and state != "Z":
            found.append(int(entry))
    return found


def test_no_console_to_join_when_the_guest_is_not_running(nmdm: SimulatedHost) -> None:
    with pytest.raises(LookupError, match="guestname is not running on the simulated host"):
        nmdm.open_console(GUEST, B_SIDE)


def test_a_guest_on_stdio_has_no_nmdm_pair(nmdm: SimulatedHost, boot: Boot, tool: Run) -> None:
    assert tool(*LOAD_ARGV).returncode == 0
    process = boot(*HANDBOOK_ARGV)
    wait_running(nmdm, process, GUEST)
    assert not os.path.lexists(nmdm.path(B_SIDE))


def test_cu_joins_the_console_and_leaves_on_tilde_dot(
    nmdm: SimulatedHost, boot: Boot, tool: Run
) -> None:
    """The simulated cu, without a terminal: what it shows, and `~.` at a line's beginning."""
    boot_guest(nmdm, boot, tool)
    path = nmdm.open_console(GUEST, B_SIDE)
    cu = subprocess.Popen(
        [sys.executable, "-c", "import sys; from reconciler.sim.cu import main; "
         "sys.exit(main(sys.argv[1:]))", "-l", str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )  # fmt: skip
    assert cu.stdin is not None and cu.stdout is not None
    shown = read_until(cu.stdout.fileno(), b"login: ")
    assert shown.startswith(b"Connected\r\n")
    cu.stdin.write(b"root\r")
    cu.stdin.flush()
    assert read_until(cu.stdout.fileno(), b"Password:").endswith(b"root\r\nPassword:")
    cu.stdin.write(b"\r~.")
    cu.stdin.flush()
    assert cu.wait(timeout=10) == 0
    assert cu.stdout.read().endswith(b"~\r\n[EOT]\r\n")


def test_cu_without_a_line_says_how_to_use_it() -> None:
    cu = subprocess.run(
        [sys.executable, "-c", "import sys; from reconciler.sim.cu import main; "
         "sys.exit(main(sys.argv[1:]))"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert (cu.returncode, cu.stderr.split(" ", 1)[0]) == (1, "usage:")


def test_the_simulated_host_provides_cu_only_where_there_is_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bare = tmp_path / "bare"
    bare.mkdir()
    monkeypatch.setenv("PATH", str(bare))
    host = SimulatedHost(tmp_path / "host").setup()
    assert (host.bin_dir / "cu").exists()

    (bare / "cu").write_text("#!/bin/sh\n")
    (bare / "cu").chmod(0o755)
    host.setup()
    assert not (host.bin_dir / "cu").exists()  # the machine's own cu is found on PATH
