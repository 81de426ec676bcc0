"""Structured logs carry their context (room, connection) as fields."""

from __future__ import annotations

import logging
import sys

import orjson
import pytest

from engine.logs import JsonFormatter, TextFormatter
from engine.redis_client import redacted


def record(**extra: object) -> logging.LogRecord:
    logger = logging.getLogger("livecart.test")
    return logger.makeRecord("livecart.test", logging.INFO, __file__, 1, "viewer %s", ("joined",),
                             None, extra=extra)  # fmt: skip


def test_json_lines_carry_context_fields() -> None:
    line = orjson.loads(JsonFormatter().format(record(room="shop", conn="ab12")))
    assert line["msg"] == "viewer joined"
    assert line["level"] == "info"
    assert line["logger"] == "livecart.test"
    assert (line["room"], line["conn"]) == ("shop", "ab12")
    assert isinstance(line["ts"], float)


def test_text_lines_show_context_after_the_message() -> None:
    text = TextFormatter().format(record(room="shop"))
    assert text.endswith("livecart.test: viewer joined  [room=shop]")


def test_exceptions_are_included() -> None:
    rec = record()
    try:
        raise ValueError("boom")
    except ValueError:
        rec.exc_info = sys.exc_info()
    assert "ValueError: boom" in orjson.loads(JsonFormatter().format(rec))["exc"]


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:s3cret@db:6379/0", "redis://:***@db:6379/0"),
        ("redis://app:s3cret@db:6379", "redis://app:***@db:6379"),
        ("redis+cluster://app:p%40ss@a:7000,b:7001", "redis+cluster://app:***@a:7000,b:7001"),
        ("redis://app@db:6379", "redis://app@db:6379"),  # a user alone is no secret
        ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
    ],
)
def test_redis_urls_are_logged_without_their_password(url: str, shown: str) -> None:
    assert redacted(url) == shown
