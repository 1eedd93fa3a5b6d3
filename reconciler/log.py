"""structlog set-up: JSON lines for machines (syslog via daemon(8)), colour for a terminal.

Log events are short names with key-value fields (`guest.exited guest=web status=0
meaning=reboot`); values are never formatted into the event name.

Lines go to stderr until it loses its reader: daemon(8) on 13.0-13.2 exits on SIGTERM without
waiting for its child (reference §8.5), just as the reconciler starts stopping guests. From
then on they go to syslog(3) (facility daemon, tag bhyve_reconciler, as daemon(8) -S -T would
have sent them), or are dropped when syslog fails too: logging never raises, so a lost pipe
never kills the daemon or interrupts a stop.
meaning=reboot`); values are never formatted into the event name. A field whose value is None
says nothing, so it is left out (`loader=None` is noise in a log line). `--log-level` picks the
least severe level shown.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import syslog
import threading
from collections.abc import MutableMapping
from typing import Any, Literal, Protocol, TextIO

import structlog

Format = Literal["auto", "json", "console"]
SYSLOG_IDENT = "bhyve_reconciler"  # rc.d/bhyve_reconciler's daemon(8) -T tag


class SyslogModule(Protocol):
    """The part of Python's `syslog` module used here (a test gives its own)."""

    def openlog(self, ident: str, logoption: int, facility: int) -> None: ...

    def syslog(self, priority: int, message: str) -> None: ...


class LostOutputLogger:
    """A structlog logger (like `PrintLogger`) whose stream may lose its reader.

    On the first failed write the stream's descriptor (and stdout's, when it is the same pipe)
    is pointed at /dev/null, so nothing buffered fails again, not even the interpreter's last
    flush at exit, and every later line goes to syslog instead.
    """

    def __init__(
        self, stream: TextIO, *, syslog_module: SyslogModule = syslog, ident: str = SYSLOG_IDENT
    ) -> None:
        self._stream: TextIO | None = stream
        self._syslog = syslog_module
        self._ident = ident
        self._lock = threading.Lock()  # the watcher and exit threads log too

    def _emit(self, priority: int, message: str) -> None:
        with self._lock:
            stream = self._stream
            if stream is not None:
                try:
                    stream.write(message + "\n")
                    stream.flush()
                    return
                except (OSError, ValueError) as exc:  # ValueError: the stream was closed
                    self._lose(stream, exc)
            with contextlib.suppress(OSError, ValueError):
                self._syslog.syslog(priority, message)

    def _lose(self, stream: TextIO, exc: Exception) -> None:
        self._stream = None
        with contextlib.suppress(OSError, ValueError):
            _to_devnull(stream)
        with contextlib.suppress(OSError, ValueError):
            self._syslog.openlog(self._ident, syslog.LOG_PID, syslog.LOG_DAEMON)
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            self._syslog.syslog(syslog.LOG_WARNING, f"log output lost ({why}): logging to syslog")

    def debug(self, message: str) -> None:
        self._emit(syslog.LOG_DEBUG, message)

    def info(self, message: str) -> None:
        self._emit(syslog.LOG_INFO, message)

    msg = log = info

    def warning(self, message: str) -> None:
        self._emit(syslog.LOG_WARNING, message)

    warn = warning

    def error(self, message: str) -> None:
        self._emit(syslog.LOG_ERR, message)

    err = exception = error

    def critical(self, message: str) -> None:
        self._emit(syslog.LOG_CRIT, message)

    fatal = failure = critical


def _to_devnull(stream: TextIO) -> None:
    """Point the stream's descriptor, and stdout's or stderr's when they share its pipe, at
    /dev/null, then drop what the stream still buffers by flushing it there."""
    fd = stream.fileno()
    lost = os.fstat(fd)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        for other in {fd, 1, 2}:
            with contextlib.suppress(OSError):
                st = os.fstat(other)
                if other == fd or (st.st_dev, st.st_ino) == (lost.st_dev, lost.st_ino):
                    os.dup2(null, other)
    finally:
        os.close(null)
    stream.flush()
    for std in (sys.stdout, sys.stderr):
        if std is not None and std is not stream:
            with contextlib.suppress(OSError, ValueError):
                std.flush()


class _LostOutputLoggerFactory:
    def __init__(self, stream: TextIO) -> None:
        self._logger = LostOutputLogger(stream)

    def __call__(self, *args: object) -> LostOutputLogger:
        return self._logger


Level = Literal["debug", "info", "warning", "error"]
LEVELS: tuple[Level, ...] = ("debug", "info", "warning", "error")
_NUMBERS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def drop_none(
    logger: object, method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor: fields whose value is None are not written."""
    for key in [k for k, v in event.items() if v is None]:
        del event[key]
    return event


def configure_logging(
    fmt: Format = "auto", level: Level | int = "info", stream: TextIO | None = None
) -> None:
    out = sys.stderr if stream is None else stream
    renderer: structlog.types.Processor
    if fmt == "json" or (fmt == "auto" and not out.isatty()):
        renderer = structlog.processors.JSONRenderer(sort_keys=False)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=out.isatty())
    number = _NUMBERS[level] if isinstance(level, str) else level
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            drop_none,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(number),
        logger_factory=_LostOutputLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
