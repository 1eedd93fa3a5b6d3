"""Stands in for daemon(8) and the reconciler it supervises, to test the rc script's signals.

`supervisor PIDFILE CHILD_PIDFILE LOGDIR [MODE]` writes its pid, spawns `child CHILD_PIDFILE
LOGDIR` and waits; each process appends the names of the signals it receives to
LOGDIR/<role>.log. On SIGTERM the child takes STOP_SECONDS to exit (it stops its guests), and
the supervisor forwards the signal, then either waits for the child (MODE "waits", daemon(8)
since its kqueue rewrite: 13.3+, 14.x) or exits at once (MODE "bails", 13.0-13.2: "bail
immediately" in usr.sbin/daemon/daemon.c of that era; reference §8.5).

`init ...` runs a supervisor under a stand-in for init(8): a subreaper that reaps whatever
ends under it, so an orphaned child is reaped as on FreeBSD (Linux's PR_SET_CHILD_SUBREAPER).
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

WATCHED = (signal.SIGHUP, signal.SIGUSR1, signal.SIGTERM)
STOP_SECONDS = 0.5
PR_SET_CHILD_SUBREAPER = 36


def record_signals(log: Path, on_term: object = None) -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        with log.open("a") as out:
            out.write(signal.Signals(signum).name + "\n")
        if signum == signal.SIGTERM and callable(on_term):
            on_term()

    for sig in WATCHED:
        signal.signal(sig, handler)


def write_pid(pidfile: Path) -> None:
    # pidfile(3) style: no newline; written via a rename so a reader never sees it half-done
    temp = pidfile.with_name(pidfile.name + ".tmp")
    temp.write_text(str(os.getpid()))
    temp.rename(pidfile)


def supervisor(pidfile: Path, child_pidfile: Path, logdir: Path, mode: str) -> None:
    child = subprocess.Popen([sys.executable, __file__, "child", str(child_pidfile), str(logdir)])

    def forward() -> None:
        child.send_signal(signal.SIGTERM)
        if mode == "waits":
            child.wait()
        os._exit(0)

    record_signals(logdir / "supervisor.log", forward)
    write_pid(pidfile)


def child(child_pidfile: Path, logdir: Path) -> None:
    def stop() -> None:
        time.sleep(STOP_SECONDS)  # stopping its guests takes a while
        os._exit(0)

    record_signals(logdir / "child.log", stop)
    write_pid(child_pidfile)


def init(argv: list[str]) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    subprocess.Popen([sys.executable, __file__, "supervisor", *argv])
    while True:
        try:
            os.wait()
        except ChildProcessError:
            return


def main(argv: list[str]) -> None:
    role = argv[1]
    if role == "init":
        init(argv[2:])
        return
    if role == "supervisor":
        mode = argv[5] if len(argv) > 5 else "waits"
        supervisor(Path(argv[2]), Path(argv[3]), Path(argv[4]), mode)
    else:
        child(Path(argv[2]), Path(argv[3]))
    while True:
        signal.pause()


if __name__ == "__main__":
    main(sys.argv)
