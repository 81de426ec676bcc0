"""Structured logs carry their context (room, connection) as fields."""

from __future__ import annotations

import logging
import sys

import orjson

from engine.logs import JsonFormatter, TextFormatter


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
