"""Every invocation the README documents runs as written against the simulated host.

The command lines are taken from the README itself: each line of a ```sh block (split at `&&`)
and each inline `bhyve-reconciler ...`. They run in order, in a directory holding a copy of the
example conf.d, with BHYVE_RECONCILER_HOST=simulated so that lines written for FreeBSD (no
--simulate) drive the simulated host unchanged, and with the installed `bhyve-reconciler`
script. A `run` line starts the daemon, which runs until the next `run` line or the end, when it
gets Ctrl-C (SIGINT) as the README says. Nothing else is rewritten.

What does not run here, and why, is SKIPPED, line by line (any other line fails the test until
it is run or listed): the lines that need FreeBSD itself (pkg, sysrc, service, rc.d and
/usr/local installs, /etc/sysctl.conf, an editor), the import that writes through the host's
config (its --dry-run runs, on a vm-bhyve datastore in the playground's /vm), the installation
steps that .ci/run performs before this suite runs (a venv and `pip install`, which need a
package index), and the command that runs this very suite. `python bench/run.py` is not an
invocation of the tool: the bench is its own program and takes minutes.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from vmbhyve_fixtures import VM_DIR

from reconciler.status import read_status

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
WAIT = 30.0

FREEBSD = "needs FreeBSD itself"
VM_BHYVE = (
    "writes through the real host's config; the playground's --dry-run of it runs here, and "
    "tests/importer runs the import itself"
)
INSTALLED = "installation: .ci/run makes this venv and installs the project before the suite runs"
SKIPPED = {
    "pkg install python311 py311-pip": FREEBSD + " (its package manager)",
    "python3.11 -m venv /usr/local/bhyve-reconciler": FREEBSD + " (an install into /usr/local)",
    "/usr/local/bhyve-reconciler/bin/pip install /path/to/bhyve-reconciler": FREEBSD
    + " (an install into /usr/local)",
    "ln -s /usr/local/bhyve-reconciler/bin/bhyve-reconciler /usr/local/bin/bhyve-reconciler": (
        FREEBSD + " (an install into /usr/local)"
    ),
    "install -m 0555 rc.d/bhyve_reconciler /usr/local/etc/rc.d/bhyve_reconciler": FREEBSD
    + " (rc.d; tests/rcd runs the script)",
    "install -d -m 0755 /usr/local/etc/bhyve-reconciler/conf.d": FREEBSD
    + " (an install into /usr/local)",
    "vi /usr/local/etc/bhyve-reconciler.toml": "an editor, for a person",
    "sysrc bhyve_reconciler_enable=YES": FREEBSD + " (rc.conf)",
    "sysrc rcshutdown_timeout=300": FREEBSD + " (rc.conf)",
    "echo kern.init_shutdown_timeout=300 >> /etc/sysctl.conf": FREEBSD + " (/etc/sysctl.conf)",
    "service bhyve_reconciler start": FREEBSD + " (rc.d; tests/rcd runs the script)",
    "python3 -m venv .venv": INSTALLED,
    ". .venv/bin/activate": INSTALLED,
    "pip install -q -e .": INSTALLED,
    "pip install -q -e '.[test]'": INSTALLED,
    "python -m pytest -q": "it is the command that runs this test",
    "bhyve-reconciler --config /usr/local/etc/bhyve-reconciler.toml "
    "import vm-bhyve /vm --zfs-dataset zroot/vm": VM_BHYVE,
    "bhyve-reconciler commands web": "`web` is the guest the import above brings; " + VM_BHYVE,
}
# Documented exit statuses other than 0 (`plan`: 2 = changes are pending).
ALSO_OK = {"plan": {2}}


def invocations(text: str) -> list[str]:
    """Each command of the README, in order: ```sh lines split at `&&`, inline invocations."""
    found: list[str] = []
    fence = re.compile(r"^```(\w*)\s*$")
    block: str | None = None
    for line in re.sub(r"\\\n\s*", "", text).splitlines():  # a `\` continues a line
        match = fence.match(line)
        if match:
            block = None if block is not None else match.group(1)
            continue
        if block == "sh":
            found += [seg.strip() for seg in _without_comment(line).split("&&") if seg.strip()]
        elif block is None:
            found += re.findall(r"`(bhyve-reconciler [^`]+)`", line)
    return found


def _without_comment(line: str) -> str:
    """The command of a line, without a comment (`# ...`) after it or on its own."""
    if line.lstrip().startswith("#"):
        return ""
    return line.split(" #", 1)[0]


@dataclass
class Session:
    """The directory the README's commands run in, and the daemon a `run` line started."""

    cwd: Path
    env: dict[str, str]
    daemon: subprocess.Popen[bytes] | None = None
    ran: list[str] = field(default_factory=list)

    @property
    def run_dir(self) -> Path:
        return self.cwd / ".bhyve-sim/host/var/run/bhyve-reconciler"

    def start_daemon(self, argv: list[str]) -> None:
        self.stop_daemon()
        log = open(self.cwd / f"daemon-{len(self.ran)}.log", "wb")  # noqa: SIM115
        self.daemon = subprocess.Popen(argv, cwd=self.cwd, env=self.env, stdout=log, stderr=log)
        log.close()
        pid = self.daemon.pid

        def ready() -> bool:
            status = read_status(self.run_dir)
            return (
                status is not None
                and status.pid == pid
                and len(status.guests) == len(list((self.cwd / "conf.d").glob("*.toml")))
                and all(g.state == "running" for g in status.guests)
            )

        deadline = time.monotonic() + WAIT
        while not ready():
            assert self.daemon.poll() is None, f"{shlex.join(argv)} exited {self.daemon.returncode}"
            assert time.monotonic() < deadline, f"{shlex.join(argv)}: guests not all running"
            time.sleep(0.1)

    def stop_daemon(self) -> None:
        """Ctrl-C, as the README says: every guest is stopped, the daemon exits 0."""
        if self.daemon is None:
            return
        self.daemon.send_signal(signal.SIGINT)
        assert self.daemon.wait(timeout=WAIT) == 0
        self.daemon = None
        status = read_status(self.run_dir)
        assert status is not None
        assert all(g.state not in ("running", "stopping") for g in status.guests)


@pytest.fixture
def session() -> Iterator[Session]:
    # Short: the playground's control socket lives deep inside it (UNIX socket paths are short).
    tmp_path = Path(tempfile.mkdtemp(prefix="readme-"))
    conf = tmp_path / "conf.d"
    shutil.copytree(ROOT / "conf.d", conf)
    # A vm-bhyve datastore at the playground's /vm, for the README's `import vm-bhyve /vm`:
    # its three guests that convert whole (`full` has keys that do not: exit status 2).
    vm = tmp_path / ".bhyve-sim/host/vm"
    shutil.copytree(VM_DIR, vm, ignore=shutil.ignore_patterns("full"), dirs_exist_ok=True)
    conf.chmod(0o755)
    for spec in conf.iterdir():
        spec.chmod(0o644)
    script = Path(sys.executable).parent / "bhyve-reconciler"
    assert script.exists(), "the project must be installed (pip install -e .) in this venv"
    path = f"{script.parent}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}"
    env = dict(os.environ, PATH=path, BHYVE_RECONCILER_HOST="simulated")
    s = Session(tmp_path, env)
    try:
        yield s
    finally:
        if s.daemon is not None and s.daemon.poll() is None:
            s.daemon.kill()
            s.daemon.wait()
        _kill_left_over(tmp_path)
        shutil.rmtree(tmp_path, ignore_errors=True)


def _kill_left_over(tmp: Path) -> None:
    """Shims and simulated guests run in their own sessions: end those under this test."""
    if not os.path.isdir("/proc"):
        return
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if str(tmp).encode() in cmdline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(entry), signal.SIGKILL)


def run_one(session: Session, line: str) -> None:
    argv = shlex.split(line)
    out_file = None
    if ">" in argv:
        at = argv.index(">")
        argv, out_file = argv[:at], argv[at + 1]
    command = next((a for a in argv[1:] if not a.startswith("-")), "")
    if command == "run":
        session.start_daemon(argv)
        session.ran.append(line)
        return
    if command == "console":
        done = console(session, argv)
    else:
        done = subprocess.run(
            argv, cwd=session.cwd, env=session.env, capture_output=True, timeout=120
        )
    ok = {0} | ALSO_OK.get(command, set())
    assert done.returncode in ok, (line, done.returncode, done.stdout, done.stderr)
    assert b"Traceback" not in done.stderr, (line, done.stderr)
    if out_file is not None:
        (session.cwd / out_file).write_bytes(done.stdout)
    check_output(command, argv, done.stdout.decode())
    session.ran.append(line)


def console(session: Session, argv: list[str]) -> subprocess.CompletedProcess[bytes]:
    """The console as a person uses it: wait for `login: `, then leave with `~.`."""
    proc = subprocess.Popen(
        argv, cwd=session.cwd, env=session.env, stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None
    shown = b""
    deadline = time.monotonic() + WAIT
    while b"login: " not in shown and time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 1.0)
        if ready:
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                break
            shown += chunk
    out, err = proc.communicate(b"~.", timeout=WAIT)
    return subprocess.CompletedProcess(argv, proc.returncode, shown + out, err)


def check_output(command: str, argv: list[str], out: str) -> None:
    """A glance at what each kind of command printed: the README's promises about it."""
    if command == "status" and "--json" in argv:
        json.loads(out)
    elif command == "status" and len([a for a in argv if not a.startswith("-")]) == 3:
        assert out.splitlines()[0] == argv[-1]
    elif command == "status":
        assert out.split()[:4] == ["NAME", "STATE", "DESIRED" if "--wide" in argv else "CPUS",
                                   "CPUS" if "--wide" in argv else "MEMORY"]  # fmt: skip
    elif command == "console":
        assert "login: " in out and out.endswith("[EOT]\r\n")
    elif command == "schema":
        assert json.loads(out)["title"] == "bhyve-reconciler guest"
    elif command == "import":
        assert out.splitlines()[-1] == "3 would write"
    elif command == "apply":
        assert re.fullmatch(r"\d+ changed, \d+ pending for run, 0 failed", out.splitlines()[-1])


def test_every_documented_invocation_runs_as_written(session: Session) -> None:
    lines = invocations(README.read_text())
    unknown = [line for line in lines if line not in SKIPPED and not line.startswith("bhyve-")]
    assert unknown == [], "run these in this test or say in SKIPPED why not"
    for line in lines:
        if line not in SKIPPED:
            run_one(session, line)
    session.stop_daemon()
    ran = [line for line in lines if line not in SKIPPED]
    assert session.ran == ran
    # The README shows every command at least once.
    commands = {_command(line) for line in ran}
    assert {"validate", "plan", "apply", "run", "status", "console", "logs", "stop", "start",
            "restart", "commands", "schema"} <= commands  # fmt: skip
    assert (session.cwd / "guest.schema.json").stat().st_size > 0


def _command(line: str) -> str:
    return next(a for a in shlex.split(line)[1:] if not a.startswith("-"))


def test_every_skipped_line_is_still_in_the_readme() -> None:
    lines = invocations(README.read_text())
    assert [line for line in SKIPPED if line not in lines] == []
