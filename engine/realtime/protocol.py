"""The realtime protocol, sans-I/O: typed client messages, server messages, close codes,
and the per-connection guard (rate limit and error budget).

Nothing here touches a socket or awaits; the gateway feeds decoded frames in and writes
what comes out. docs/protocol.md is the public description of everything in this module.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engine.core.errors import LivecartError, ProtocolError
from engine.core.identity import DEVICE_RE, PRODUCT_ID_RE
from engine.core.settings import Limits
from engine.core.stream_ids import is_stream_id

# ASCII digits only: `\d` would also match other scripts' digits.
MAX_REQUEST_ID = 64
MAX_TOKEN = 4096
# Absolute ceiling on comment text; rooms set a lower `max_comment_chars`.
MAX_COMMENT_TEXT = 2000


class CloseCode(enum.IntEnum):
    """WebSocket close codes. 1000-1015 are RFC 6455; 3000-3499 mean "reconnect and
    resume", 3500-3999 mean "do not reconnect without fixing something first"."""

    NORMAL = 1000
    GOING_AWAY = 1001  # engine shutting down or restarting: reconnect elsewhere
    MESSAGE_TOO_BIG = 1009  # a frame above limits.max_frame_bytes (sent by websockets)
    SLOW_CONSUMER = 3001  # the socket fell behind the room; reconnect and resume
    OVERLOADED = 3002  # the engine sheds load; reconnect after a backoff
    HELLO_TIMEOUT = 3003  # no hello within limits.hello_timeout_s
    AUTH_FAILED = 3500  # token invalid, expired or for another room: get a new token
    BANNED = 3501  # banned from this room
    PROTOCOL_ABUSE = 3502  # too many errors, or frames far above the rate limit
    ROOM_NOT_FOUND = 3503
    TOO_MANY_CONNECTIONS = 3504  # this user holds settings.connections_per_user here already

    @property
    def reconnect(self) -> bool:
        return self in {CloseCode.GOING_AWAY} or 3000 <= self < 3500


class SessionState(enum.Enum):
    AWAITING_HELLO = "awaiting_hello"
    JOINED = "joined"
    CLOSED = "closed"


# ---- client -> server ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hello:
    token: str | None
    since: str | None
    id: str | None = None
    # A random id the client keeps (e.g. in localStorage) so anonymous viewers who
    # reconnect count once towards unique viewers.
    device: str | None = None
    # A share link's signed referrer token (engine/social/referrals.py), passed on by the page.
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class Comment:
    text: str
    id: str | None = None


@dataclass(frozen=True, slots=True)
class Like:
    count: int
    id: str | None = None


@dataclass(frozen=True, slots=True)
class Ping:
    id: str | None = None


@dataclass(frozen=True, slots=True)
class Grab:
    """Grab `quantity` units of a sale; `id` is required and makes the grab idempotent."""

    sale: str
    quantity: int
    id: str


@dataclass(frozen=True, slots=True)
class Release:
    reservation: str
    id: str | None = None


@dataclass(frozen=True, slots=True)
class JoinWaitlist:
    sale: str
    id: str | None = None


@dataclass(frozen=True, slots=True)
class Claim:
    """Claim one coupon of a live drop; `id` is required and makes the claim idempotent."""

    drop: str
    id: str


@dataclass(frozen=True, slots=True)
class Bid:
    """Bid `amount` (minor units) on an auction, with an optional proxy `max`."""

    auction: str
    amount: int
    max: int | None = None
    id: str | None = None


@dataclass(frozen=True, slots=True)
class Click:
    """The viewer opened a product's card (for the show's metrics; no answer but an ack)."""

    product: str
    id: str | None = None


ClientMessage = Hello | Comment | Like | Ping | Grab | Release | JoinWaitlist | Claim | Bid | Click
MAX_GRAB_QUANTITY = 10
MAX_REF = 200
MAX_BID = 100_000_000  # engine.interactive.auctions.rules.MAX_PRICE


def _invalid(field: str, why: str) -> ProtocolError:
    return ProtocolError(f"{field}: {why}", code="invalid_field", details={"field": field})


def _opt_str(body: dict[str, Any], field: str, max_len: int) -> str | None:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _invalid(field, "must be a string")
    if len(value) > max_len:
        raise _invalid(field, f"longer than {max_len} characters")
    return value


def _required_str(body: dict[str, Any], field: str, max_len: int) -> str:
    value = _opt_str(body, field, max_len)
    if not value:
        raise _invalid(field, "required")
    return value


def _int(body: dict[str, Any], field: str, low: int, high: int) -> int:
    value = body.get(field)
    # bool is an int subclass; `true` is not a count.
    if not isinstance(value, int) or isinstance(value, bool):
        raise _invalid(field, "must be an integer")
    if not low <= value <= high:
        raise _invalid(field, f"must be between {low} and {high}")
    return value


def request_id_of(body: Any) -> str | None:
    """The request id of a frame, when it has a usable one (for error `ref`s)."""
    if isinstance(body, dict):
        value = body.get("id")
        if isinstance(value, str) and len(value) <= MAX_REQUEST_ID:
            return value
    return None


def _comment(body: dict[str, Any], request_id: str | None, limits: Limits) -> Comment:
    text = body.get("text")
    if not isinstance(text, str):
        raise _invalid("text", "must be a string")
    if len(text) > MAX_COMMENT_TEXT:
        raise ProtocolError(
            f"comment longer than {MAX_COMMENT_TEXT} characters",
            code="too_large",
            details={"field": "text", "max": MAX_COMMENT_TEXT},
        )
    return Comment(text=text, id=request_id)


def _like(body: dict[str, Any], request_id: str | None, limits: Limits) -> Like:
    return Like(count=_int(body, "count", 1, limits.max_likes_per_frame), id=request_id)


def _ping(body: dict[str, Any], request_id: str | None, limits: Limits) -> Ping:
    return Ping(id=request_id)


def _hello(body: dict[str, Any], request_id: str | None, limits: Limits) -> Hello:
    since = _opt_str(body, "since", 41)
    if since is not None and not is_stream_id(since):
        raise _invalid("since", "must be an offset such as '1732212345678-0'")
    device = _opt_str(body, "device", 48)
    if device is not None and not DEVICE_RE.fullmatch(device):
        raise _invalid("device", "8-48 characters of A-Z, a-z, 0-9, '_' and '-'")
    return Hello(
        token=_opt_str(body, "token", MAX_TOKEN), since=since, id=request_id, device=device,
        ref=_opt_str(body, "ref", MAX_REF),
    )  # fmt: skip


def _grab(body: dict[str, Any], request_id: str | None, limits: Limits) -> Grab:
    if not request_id:
        raise _invalid("id", "a grab needs a request id (the same id always gets the same answer)")
    quantity = _int(body, "quantity", 1, MAX_GRAB_QUANTITY) if "quantity" in body else 1
    return Grab(sale=_required_str(body, "sale", 12), quantity=quantity, id=request_id)


def _release(body: dict[str, Any], request_id: str | None, limits: Limits) -> Release:
    return Release(reservation=_required_str(body, "reservation", 40), id=request_id)


def _waitlist(body: dict[str, Any], request_id: str | None, limits: Limits) -> JoinWaitlist:
    return JoinWaitlist(sale=_required_str(body, "sale", 12), id=request_id)


def _claim(body: dict[str, Any], request_id: str | None, limits: Limits) -> Claim:
    if not request_id:
        raise _invalid("id", "a claim needs a request id (the same id always gets the same answer)")
    return Claim(drop=_required_str(body, "drop", 12), id=request_id)


def _bid(body: dict[str, Any], request_id: str | None, limits: Limits) -> Bid:
    amount = _int(body, "amount", 1, MAX_BID)
    ceiling = _int(body, "max", amount, MAX_BID) if body.get("max") is not None else None
    return Bid(auction=_required_str(body, "auction", 12), amount=amount, max=ceiling,
               id=request_id)  # fmt: skip


def _click(body: dict[str, Any], request_id: str | None, limits: Limits) -> Click:
    product = _required_str(body, "product", 10)
    if not PRODUCT_ID_RE.fullmatch(product):
        raise _invalid("product", "a product id such as 'p12'")
    return Click(product=product, id=request_id)


_PARSERS: dict[str, Callable[[dict[str, Any], str | None, Limits], ClientMessage]] = {
    "comment": _comment,
    "like": _like,
    "ping": _ping,
    "hello": _hello,
    "grab": _grab,
    "release": _release,
    "waitlist": _waitlist,
    "claim": _claim,
    "bid": _bid,
    "click": _click,
}


def parse_message(body: Any, limits: Limits) -> ClientMessage:
    """Validate one decoded frame into a typed message or raise ProtocolError."""
    if not isinstance(body, dict):
        raise ProtocolError("a frame must be an object with a `type`", code="bad_frame")
    kind = body.get("type")
    if not isinstance(kind, str):
        raise _invalid("type", "must be a string")
    request_id = _opt_str(body, "id", MAX_REQUEST_ID)
    parser = _PARSERS.get(kind)
    if parser is None:
        raise ProtocolError(f"unknown message type {kind[:40]!r}", code="unknown_type")
    return parser(body, request_id, limits)


# ---- server -> client ---------------------------------------------------------------


def error_message(error: LivecartError, ref: str | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"type": "error", **error.to_wire()}
    if ref is not None:
        message["ref"] = ref
    return message


def ack_message(ref: str | None, **fields: Any) -> dict[str, Any]:
    message: dict[str, Any] = {"type": "ack", **fields}
    if ref is not None:
        message["ref"] = ref
    return message


def pong_message(ref: str | None, server_time_ms: int) -> dict[str, Any]:
    message: dict[str, Any] = {"type": "pong", "t": server_time_ms}
    if ref is not None:
        message["ref"] = ref
    return message


def notice_message(kind: str, **fields: Any) -> dict[str, Any]:
    """A message for one user only (muted, unmuted...)."""
    return {"type": "notice", "kind": kind, **fields}


# ---- per-connection guard -----------------------------------------------------------


class ConnectionGuard:
    """Token-bucket rate limit on client frames plus an error budget.

    Pure and clock-injected so it is unit-testable; the gateway passes `time.monotonic()`.
    """

    __slots__ = ("_errors", "_limits", "_stamp", "_tokens")

    def __init__(self, limits: Limits, now: float) -> None:
        self._limits = limits
        self._tokens = float(limits.message_burst)
        self._stamp = now
        self._errors: list[float] = []

    def admit(self, now: float) -> bool:
        """Take one token for an incoming frame; False means answer `rate_limited`."""
        elapsed = max(0.0, now - self._stamp)
        self._stamp = now
        self._tokens = min(
            float(self._limits.message_burst),
            self._tokens + elapsed * self._limits.messages_per_second,
        )
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def retry_after_ms(self) -> int:
        missing = max(0.0, 1.0 - self._tokens)
        return math.ceil(1000 * missing / self._limits.messages_per_second)

    def record_error(self, now: float) -> bool:
        """Count an error; True means the connection exceeded its budget and must close."""
        horizon = now - self._limits.error_window_s
        self._errors = [t for t in self._errors if t > horizon]
        self._errors.append(now)
        return len(self._errors) > self._limits.max_errors
