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


# ---- catalog -------------------------------------------------------------------------


def product_counter(room: str) -> str:
    return f"{_room(room)}:product_seq"


def products(room: str) -> str:
    """Hash: product id -> product JSON (with its SKUs)."""
    return f"{_room(room)}:products"


def skus(room: str) -> str:
    """Hash: SKU -> product id (SKUs are unique within a room)."""
    return f"{_room(room)}:skus"


def lineup(room: str) -> str:
    """List: product ids in run-of-show order."""
    return f"{_room(room)}:lineup"


def impressions(room: str) -> str:
    """Hash: product id -> product card impressions."""
    return f"{_room(room)}:impressions"


# ---- flash sales -----------------------------------------------------------------------


def sale_counter(room: str) -> str:
    return f"{_room(room)}:sale_seq"


def sales(room: str) -> str:
    """Sorted set: sale id -> its number (creation order)."""
    return f"{_room(room)}:sales"


def sale(room: str, sale_id: str) -> str:
    """Hash: the sale's terms and its stock counters."""
    return f"{_room(room)}:sale:{sale_id}"


def sale_reservations(room: str, sale_id: str) -> str:
    """Hash: reservation id -> JSON record (u user, q units, s state, e expires_at ...)."""
    return f"{_room(room)}:sale:{sale_id}:res"


def sale_users(room: str, sale_id: str) -> str:
    """Hash: user -> units held or sold (the per-user cap counts these)."""
    return f"{_room(room)}:sale:{sale_id}:users"


def sale_answers(room: str, sale_id: str) -> str:
    """Hash: "user request-id" -> the grab's answer (idempotency)."""
    return f"{_room(room)}:sale:{sale_id}:answers"


def sale_waitlist(room: str, sale_id: str) -> str:
    return f"{_room(room)}:sale:{sale_id}:waitlist"


def sale_waiting(room: str, sale_id: str) -> str:
    """Set: users on the waitlist (for uniqueness)."""
    return f"{_room(room)}:sale:{sale_id}:waiting"


def expiry(room: str) -> str:
    """Sorted set: held reservation id -> expires_at ms (the sweeper's index)."""
    return f"{_room(room)}:expiry"


def outbox(room: str) -> str:
    """Stream: every stock event (reserved, released, expired, sold, sale changes)."""
    return f"{_room(room)}:outbox"


def room_keys_pattern(room: str) -> str:
    """SCAN pattern matching every key of one room (used to delete a room in tests/tools)."""
    return f"{_room(room)}:*"
