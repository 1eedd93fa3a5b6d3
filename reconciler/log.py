"""structlog set-up: JSON lines for machines (syslog via daemon(8)), colour for a terminal.

Log events are short names with key-value fields (`guest.exited guest=web status=0
meaning=reboot`); values are never formatted into the event name. A field whose value is None
says nothing, so it is left out (`loader=None` is noise in a log line). `--log-level` picks the
least severe level shown.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, Literal, TextIO

import structlog

Format = Literal["auto", "json", "console"]
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
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
