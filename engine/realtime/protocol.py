"""The realtime protocol, sans-I/O: typed client messages, server messages, close codes,
and the per-connection guard (rate limit and error budget).

Nothing here touches a socket or awaits; the gateway feeds decoded frames in and writes
what comes out. docs/protocol.md is the public description of everything in this module.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Union

import msgspec
from msgspec import Meta, Struct

from engine.core.errors import LivecartError, ProtocolError
from engine.core.fields import invalid_field, refused_field
from engine.core.identity import DEVICE_RE, PRODUCT_ID_RE
from engine.core.settings import Limits
from engine.core.stream_ids import STREAM_ID_RE, is_stream_id
from engine.realtime.codec import MALFORMED, Codec

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
    INTERNAL_ERROR = 1011  # a keepalive ping unanswered, or an unexpected server error
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
        return self in {CloseCode.GOING_AWAY, CloseCode.INTERNAL_ERROR} or 3000 <= self < 3500


class SessionState(enum.Enum):
    AWAITING_HELLO = "awaiting_hello"
    JOINED = "joined"
    CLOSED = "closed"


# ---- client -> server ---------------------------------------------------------------
#
# The wire schema of client frames: one msgspec Struct per message, a tagged union on
# `type`, and the rules of docs/protocol.md's message tables as field constraints.
# msgspec decodes and validates a frame (JSON or msgpack) in one pass, straight from its
# bytes into these types; `parse_frame` turns what it refuses into the documented errors.
# A field that is `null` is absent (except `grab.quantity`); unknown fields are ignored.

MAX_GRAB_QUANTITY = 10
MAX_REF = 200

# Patterns end in `\Z`: msgspec searches them, and `$` would let a final newline through.
RequestId = Annotated[str, Meta(max_length=MAX_REQUEST_ID)]
# A grab's or claim's request id is its idempotency key: required, and not empty.
IdempotencyKey = Annotated[str, Meta(min_length=1, max_length=MAX_REQUEST_ID)]
Offset = Annotated[str, Meta(pattern=rf"^{STREAM_ID_RE.pattern}\Z")]  # and below 2**64
Device = Annotated[str, Meta(pattern=DEVICE_RE.pattern)]
SaleId = Annotated[str, Meta(pattern=r"^s[0-9]{1,9}\Z")]  # engine.commerce.sales.SALE_ID_RE
ReservationId = Annotated[str, Meta(pattern=r"^s[0-9]{1,9}\.[0-9]{1,12}\Z")]
DropId = Annotated[str, Meta(pattern=r"^d[0-9]{1,9}\Z")]  # engine.commerce.coupons.DROP_ID_RE
ProductId = Annotated[str, Meta(pattern=rf"^{PRODUCT_ID_RE.pattern}\Z")]


class ClientFrame(Struct, frozen=True, gc=False, tag_field="type"):
    """A client frame; its class's `tag` is its `type`. (Each class repeats `frozen` for
    type checkers.) A feature's frames subclass it too (engine/core/feature.py `Frame`)."""


class Hello(ClientFrame, tag="hello", frozen=True):
    token: Annotated[str, Meta(max_length=MAX_TOKEN)] | None = None
    since: Offset | None = None
    id: RequestId | None = None
    # A random id the client keeps (e.g. in localStorage) so anonymous viewers who
    # reconnect count once towards unique viewers.
    device: Device | None = None
    # A share link's signed referrer token (engine/social/referrals.py), passed on by the page.
    ref: Annotated[str, Meta(max_length=MAX_REF)] | None = None

    def __post_init__(self) -> None:
        if self.since is not None and not is_stream_id(self.since):
            raise invalid_field("since", "an offset whose parts are below 2**64")


class Comment(ClientFrame, tag="comment", frozen=True):
    # Above the absolute ceiling: `too_large`; rooms set a lower `max_comment_chars`.
    text: Annotated[str, Meta(max_length=MAX_COMMENT_TEXT)]
    id: RequestId | None = None


class Like(ClientFrame, tag="like", frozen=True):
    count: Annotated[int, Meta(ge=1)]  # at most limits.max_likes_per_frame: parse_frame
    id: RequestId | None = None


class Ping(ClientFrame, tag="ping", frozen=True):
    id: RequestId | None = None


class Grab(ClientFrame, tag="grab", frozen=True):
    """Grab `quantity` units of a sale; `id` is required and makes the grab idempotent."""

    sale: SaleId
    id: IdempotencyKey
    quantity: Annotated[int, Meta(ge=1, le=MAX_GRAB_QUANTITY)] = 1


class Release(ClientFrame, tag="release", frozen=True):
    reservation: ReservationId
    id: RequestId | None = None


class JoinWaitlist(ClientFrame, tag="waitlist", frozen=True):
    sale: SaleId
    id: RequestId | None = None


class Claim(ClientFrame, tag="claim", frozen=True):
    """Claim one coupon of a live drop; `id` is required and makes the claim idempotent."""

    drop: DropId
    id: IdempotencyKey


class Click(ClientFrame, tag="click", frozen=True):
    """The viewer opened a product's card (for the show's metrics; no answer but an ack)."""

    product: ProductId
    id: RequestId | None = None


ClientMessage = Hello | Comment | Like | Ping | Grab | Release | JoinWaitlist | Claim | Click
CORE_FRAMES: tuple[type[ClientFrame], ...] = (
    Hello, Comment, Like, Ping, Grab, Release, JoinWaitlist, Claim, Click,
)  # fmt: skip
_JSON = Codec.JSON
# Messages whose request id is their idempotency key: a missing one is reported first.
_KEYED = frozenset({"grab", "claim"})


class FrameSchema:
    """The client frames one engine understands: the core's and its features' (each a
    ClientFrame subclass), one tagged union whose decoders are built once (a decoder
    compiles its type's schema)."""

    __slots__ = ("decode_json", "decode_msgpack", "types")

    def __init__(self, extra: Sequence[type[ClientFrame]] = ()) -> None:
        self.types = (*CORE_FRAMES, *extra)
        tags = [str(t.__struct_config__.tag) for t in self.types]
        if len(set(tags)) != len(tags):
            raise ValueError(f"two client frames with one type: {sorted(tags)}")
        union: Any = Union[self.types]  # noqa: UP007 (a runtime union of classes)
        self.decode_json: Callable[[bytes | str], ClientFrame] = Codec.JSON.decoder(union)
        self.decode_msgpack: Callable[[bytes | str], ClientFrame] = Codec.MSGPACK.decoder(union)


CORE_SCHEMA = FrameSchema()


class InvalidMessage(ProtocolError):
    """A frame that decoded to an object but breaks a rule; `ref` is its request id when
    that is usable (the error frame's `ref`)."""

    def __init__(self, error: ProtocolError, ref: str | None) -> None:
        super().__init__(error.message, code=error.code, details=error.details)
        self.ref = ref


def request_id_of(body: Any) -> str | None:
    """The request id of a frame, when it has a usable one (for error `ref`s)."""
    if isinstance(body, dict):
        value = body.get("id")
        if isinstance(value, str) and len(value) <= MAX_REQUEST_ID:
            return value
    return None


def parse_frame(frame: bytes | str, codec: Codec, limits: Limits,
                schema: FrameSchema = CORE_SCHEMA) -> ClientFrame:  # fmt: skip
    """Decode and validate one client frame into a typed message, or raise ProtocolError:
    `too_large` or `bad_frame` for a frame that does not decode, InvalidMessage for one that
    decodes but breaks a rule."""
    # The hot path: a frame of at most a quarter of the limit in characters (bytes) cannot
    # be above it, and only a text frame can be on the wrong connection.
    if len(frame) > limits.max_frame_bytes >> 2 or (codec is not _JSON and type(frame) is str):
        codec.check(frame, max_bytes=limits.max_frame_bytes)
    try:
        message = (schema.decode_json if codec is _JSON else schema.decode_msgpack)(frame)
    except (msgspec.ValidationError, ProtocolError) as refusal:
        body = codec.decode(frame, max_bytes=limits.max_frame_bytes)  # bad_frame if it can't
        raise InvalidMessage(_rejection(body, refusal), request_id_of(body)) from None
    except MALFORMED as error:
        raise codec.malformed(error) from None
    if type(message) is Like and message.count > limits.max_likes_per_frame:
        raise InvalidMessage(
            invalid_field("count", f"must be between 1 and {limits.max_likes_per_frame}"),
            message.id,
        )
    return message


def _rejection(
    body: dict[str, Any], refusal: msgspec.ValidationError | ProtocolError
) -> ProtocolError:
    """The documented error for a decoded frame the schema refused, checked in the order
    docs/protocol.md gives: `type`, the request id, the message's own fields."""
    if isinstance(refusal, ProtocolError):  # a rule across fields (__post_init__)
        return refusal
    kind = body.get("type")
    if not isinstance(kind, str):
        return invalid_field("type", "must be a string")
    if body.get("id") is not None and request_id_of(body) is None:
        return invalid_field("id", f"must be a string of at most {MAX_REQUEST_ID} characters")
    field, reason = refused_field(refusal)
    if field is None:  # not a field's fault (msgspec names the field of every refusal)
        return ProtocolError(reason, code="bad_frame")
    if field == "type":
        return ProtocolError(f"unknown message type {kind[:40]!r}", code="unknown_type")
    if kind in _KEYED and not body.get("id"):
        return invalid_field(
            "id", f"a {kind} needs a request id (the same id always gets the same answer)"
        )
    if field == "text" and "length" in reason:  # above the absolute ceiling
        return ProtocolError(
            f"comment longer than {MAX_COMMENT_TEXT} characters",
            code="too_large",
            details={"field": "text", "max": MAX_COMMENT_TEXT},
        )
    return invalid_field(field, reason)


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
