"""Every Redis key and channel the engine uses, built in one place.

All keys of a room carry the `{room}` hash tag so a room lives in one Cluster slot and
multi-key Lua scripts run unchanged on Redis Cluster. The only key without a room tag
is the global room index (`lc:rooms`), which no script touches together with room keys.
"""

from __future__ import annotations

import re

from engine.errors import ProtocolError

PREFIX = "lc"
ROOM_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
# Users appear inside keys; keep them to a safe alphabet.
USER_ID_RE = re.compile(r"^[A-Za-z0-9_.:@-]{1,64}$")


def check_room_id(room: str) -> str:
    if not ROOM_ID_RE.fullmatch(room):
        raise ProtocolError(
            "room ids are 1-40 characters of a-z, 0-9, '_' and '-', "
            "starting with a letter or digit",
            code="invalid_field",
            details={"field": "room"},
        )
    return room


def check_user_id(user: str) -> str:
    if not USER_ID_RE.fullmatch(user):
        raise ProtocolError(
            "user ids are 1-64 characters of A-Z, a-z, 0-9 and _ . : @ -",
            code="invalid_field",
            details={"field": "user"},
        )
    return user


def rooms_index() -> str:
    return f"{PREFIX}:rooms"


def _room(room: str) -> str:
    return f"{PREFIX}:{{{room}}}"


def room_meta(room: str) -> str:
    """Hash: the room's fields and settings (see engine.rooms)."""
    return f"{_room(room)}:meta"


def room_stream(room: str) -> str:
    """Stream: the room's ordered log (comments, deletions, pins, state changes)."""
    return f"{_room(room)}:log"


def room_bus(room: str) -> str:
    """Pub/sub channel: every stream entry and control message of the room."""
    return f"{_room(room)}:bus"


def likes(room: str) -> str:
    return f"{_room(room)}:likes"


def presence(room: str) -> str:
    """Hash: engine process id -> "online_count|reported_at_ms"."""
    return f"{_room(room)}:presence"


def peak(room: str) -> str:
    return f"{_room(room)}:peak"


def uniques(room: str) -> str:
    """HyperLogLog of viewer identities that joined the room."""
    return f"{_room(room)}:uniques"


def banned_users(room: str) -> str:
    return f"{_room(room)}:banned"


def banned_words(room: str) -> str:
    return f"{_room(room)}:banned_words"


def muted(room: str, user: str) -> str:
    return f"{_room(room)}:mute:{user}"


def slow_mode(room: str, user: str) -> str:
    return f"{_room(room)}:slow:{user}"


def comment_rate(room: str, user: str) -> str:
    return f"{_room(room)}:rate:{user}"


def room_keys_pattern(room: str) -> str:
    """SCAN pattern matching every key of one room (used to delete a room in tests/tools)."""
    return f"{_room(room)}:*"
