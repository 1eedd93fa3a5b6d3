"""A daemon whose output loses its reader (daemon(8) on 13.0-13.2 exits on SIGTERM without
waiting for its child, reference §8.5): log lines that cannot be written go to syslog, as
FreeBSD daemons do, or are dropped; logging never raises, and nothing is left buffered for the
interpreter to fail on at exit."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import syslog
import textwrap
from collections.abc import Iterator

import pytest

from reconciler.log import LostOutputLogger


class Syslog:
    def __init__(self) -> None:
        self.opened: list[tuple[str, int, int]] = []
        self.lines: list[tuple[int, str]] = []

    def openlog(self, ident: str, logoption: int, facility: int) -> None:
        self.opened.append((ident, logoption, facility))

    def syslog(self, priority: int, message: str) -> None:
        self.lines.append((priority, message))


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    r, w = os.pipe()
    yield r, w
    for fd in (r, w):
        with contextlib.suppress(OSError):
            os.close(fd)


def test_lines_go_to_the_stream_while_it_has_a_reader(pipe: tuple[int, int]) -> None:
    r, w = pipe
    sink = Syslog()
    with os.fdopen(w, "w", closefd=False) as stream:
        logger = LostOutputLogger(stream, syslog_module=sink)
        logger.info('{"event": "daemon.started"}')
    assert os.read(r, 1000) == b'{"event": "daemon.started"}\n'
    assert sink.lines == []


def test_once_the_reader_is_gone_lines_go_to_syslog(pipe: tuple[int, int]) -> None:
    r, w = pipe
    sink = Syslog()
    stream = os.fdopen(w, "w", closefd=False)
    logger = LostOutputLogger(stream, syslog_module=sink)
    os.close(r)  # daemon(8) exited
    logger.info('{"event": "daemon.stopping"}')
    logger.error('{"event": "guest.stop_abandoned"}')
    logger.warning('{"event": "guest.forced_poweroff"}')
    assert sink.opened == [("bhyve_reconciler", syslog.LOG_PID, syslog.LOG_DAEMON)]
    assert sink.lines == [
        (syslog.LOG_WARNING, "log output lost (Broken pipe): logging to syslog"),
        (syslog.LOG_INFO, '{"event": "daemon.stopping"}'),
        (syslog.LOG_ERR, '{"event": "guest.stop_abandoned"}'),
        (syslog.LOG_WARNING, '{"event": "guest.forced_poweroff"}'),
    ]
    stream.write("pending\n")
    stream.flush()  # the descriptor now leads to /dev/null: nothing fails any more
    stream.close()


def test_a_failing_syslog_drops_the_line() -> None:
    class Broken(Syslog):
        def syslog(self, priority: int, message: str) -> None:
            raise OSError("no /dev/log")

    r, w = os.pipe()
    os.close(r)
    stream = os.fdopen(w, "w")
    logger = LostOutputLogger(stream, syslog_module=Broken())
    logger.info("a line nobody can read")  # no exception
    stream.close()


def test_a_process_that_lost_its_output_still_exits_0() -> None:
    # Without the switch to /dev/null, Python's final flush of stderr fails: exit status 120.
    program = textwrap.dedent(
        """
        import os, sys, time
        from reconciler.log import configure_logging
        import structlog
        configure_logging("json")
        log = structlog.get_logger("t")
        log.info("first")
        sys.stdin.read(1)  # the test closes our output, then lets us go on
        for _ in range(200):
            log.info("after", padding="x" * 500)
        print("and a print", file=sys.stderr)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", program],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert proc.stdout is not None and proc.stdin is not None
    assert b'"event": "first"' in proc.stdout.readline()
    proc.stdout.close()
    proc.stdin.write(b"x")
    proc.stdin.close()
    assert proc.wait(timeout=30) == 0
