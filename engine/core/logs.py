"""Structured logs: JSON lines (`--log-format json`) or readable text, to stderr.

Context such as the room, connection and user ids travels in `extra=` and comes out as
fields, so operators can filter one room or one connection.

Warnings and errors pass a flood guard: a client can cause one at will (a forged payment
callback, a connection that fails), so each kind of line (logger, level and message
template) is written at most `FLOOD_BURST` times a `FLOOD_WINDOW_S`; the rest are counted
and the next line of that kind written says how many were left out (`suppressed`).
"""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

import orjson

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def _context(record: logging.LogRecord) -> dict[str, object]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            **_context(record),
        }
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        context = " ".join(f"{k}={v}" for k, v in _context(record).items())
        line = f"{stamp} {record.levelname:<7} {record.name}: {record.getMessage()}"
        if context:
            line += f"  [{context}]"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


FLOOD_BURST = 20
FLOOD_WINDOW_S = 60.0
_FLOOD_KINDS_MAX = 10_000  # kinds remembered at once (a message template is code, not input)


class FloodGuard(logging.Filter):
    """At most `burst` warnings (and worse) of one kind a `window_s`; INFO and DEBUG pass."""

    def __init__(self, burst: int = FLOOD_BURST, window_s: float = FLOOD_WINDOW_S) -> None:
        super().__init__()
        self.burst = burst
        self.window_s = window_s
        # kind -> [window start, lines written in it, lines left out since the last written]
        self.kinds: dict[tuple[str, int, str], list[float]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        kind = (record.name, record.levelno, str(record.msg))
        now = record.created
        state = self.kinds.get(kind)
        if state is None or now - state[0] >= self.window_s:
            if state is None and len(self.kinds) >= _FLOOD_KINDS_MAX:
                self.kinds.clear()
            left_out = 0 if state is None else int(state[2])
            state = self.kinds[kind] = [now, 0, left_out]
        if state[1] >= self.burst:
            state[2] += 1
            return False
        state[1] += 1
        if state[2]:
            record.suppressed = int(state[2])  # same kind, left out before this line
            state[2] = 0
        return True


def configure(fmt: str = "text", level: str = "INFO", stream: TextIO | None = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(FloodGuard())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Per-connection lifecycle lines are DEBUG-worthy at scale.
    logging.getLogger("websockets").setLevel(logging.WARNING)
    logging.getLogger("livecart.gateway").setLevel(
        logging.DEBUG if level.upper() == "DEBUG" else logging.WARNING
    )
