"""Stands in for daemon(8) and the reconciler it supervises, to test the rc script's signals.

`supervisor PIDFILE CHILD_PIDFILE LOGDIR` writes its pid, spawns `child CHILD_PIDFILE LOGDIR`
and waits; each process appends the names of the signals it receives to LOGDIR/<role>.log.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType

WATCHED = (signal.SIGHUP, signal.SIGUSR1, signal.SIGTERM)


def record_signals(log: Path) -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        with log.open("a") as out:
            out.write(signal.Signals(signum).name + "\n")

    for sig in WATCHED:
        signal.signal(sig, handler)


def write_pid(pidfile: Path) -> None:
    # pidfile(3) style: no newline; written via a rename so a reader never sees it half-done
    temp = pidfile.with_name(pidfile.name + ".tmp")
    temp.write_text(str(os.getpid()))
    temp.rename(pidfile)


def main(argv: list[str]) -> None:
    role = argv[1]
    if role == "supervisor":
        pidfile, child_pidfile, logdir = Path(argv[2]), Path(argv[3]), Path(argv[4])
        record_signals(logdir / "supervisor.log")
        write_pid(pidfile)
        subprocess.Popen([sys.executable, __file__, "child", str(child_pidfile), str(logdir)])
    else:
        child_pidfile, logdir = Path(argv[2]), Path(argv[3])
        record_signals(logdir / "child.log")
        write_pid(child_pidfile)
    while True:
        signal.pause()


if __name__ == "__main__":
    main(sys.argv)
