"""Log lines: no field whose value is None, and `--log-level` picks what is shown."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest
import structlog

from reconciler.log import LEVELS, configure_logging


@pytest.fixture(autouse=True)
def restore_structlog() -> Iterator[None]:
    yield
    structlog.reset_defaults()


def events(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_field_whose_value_is_none_is_left_out() -> None:
    out = io.StringIO()
    configure_logging("json", stream=out)
    structlog.get_logger().info("guest.booting", guest="web", loader=None, boot=1, pid=None)
    [event] = events(out)
    assert event["guest"] == "web" and event["boot"] == 1
    assert "loader" not in event and "pid" not in event
    assert None not in event.values()


def test_false_and_zero_are_values_not_nothing() -> None:
    out = io.StringIO()
    configure_logging("json", stream=out)
    structlog.get_logger().info("guest.booting", reboot=False, status=0, keys=[])
    [event] = events(out)
    assert (event["reboot"], event["status"], event["keys"]) == (False, 0, [])


def test_the_console_format_has_no_none_either() -> None:
    out = io.StringIO()
    configure_logging("console", stream=out)
    structlog.get_logger().info("guest.exited", guest="web", signal=None)
    assert "signal" not in out.getvalue() and "None" not in out.getvalue()


@pytest.mark.parametrize("level", LEVELS)
def test_the_level_shows_that_level_and_above(level: str) -> None:
    out = io.StringIO()
    configure_logging("json", level, stream=out)  # type: ignore[arg-type]
    log = structlog.get_logger()
    for name in LEVELS:
        getattr(log, name)(f"test.{name}")
    shown = [e["event"] for e in events(out)]
    assert shown == [f"test.{name}" for name in LEVELS[LEVELS.index(level) :]]
