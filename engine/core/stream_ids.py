"""Redis stream ids (`<ms>-<seq>`): the offsets of room logs, as viewers resume from them."""

from __future__ import annotations

import re
from typing import TypeGuard

STREAM_ID_RE = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")
_U64 = 2**64


def is_stream_id(value: object) -> TypeGuard[str]:
    """Whether `value` is an offset Redis accepts: `<ms>-<seq>`, both below 2**64."""
    if not isinstance(value, str) or not STREAM_ID_RE.fullmatch(value):
        return False
    ms, _, seq = value.partition("-")
    return int(ms) < _U64 and int(seq) < _U64


def entry_timestamp_ms(entry_id: str) -> int:
    """Stream ids are `<milliseconds>-<sequence>`; the first part is Redis server time."""
    return int(entry_id.partition("-")[0])


def stream_id_key(entry_id: str) -> tuple[int, int]:
    """Order key for stream ids (they do not sort as strings)."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)
