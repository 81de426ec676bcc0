"""engine.realtime.protocol: message validation, server messages, close codes and the guard."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import msgpack
import pytest

from engine.core.errors import ProtocolError, RateLimitedError
from engine.core.identity import Role
from engine.core.settings import Limits
from engine.core.stream_ids import entry_timestamp_ms, stream_id_key
from engine.features.auctions.frames import MAX_BID, Bid
from engine.realtime.codec import Codec
from engine.realtime.protocol import (
    MAX_COMMENT_TEXT,
    MAX_REF,
    MAX_REQUEST_ID,
    MAX_TOKEN,
    Claim,
    Click,
    ClientMessage,
    CloseCode,
    Comment,
    ConnectionGuard,
    FrameSchema,
    Grab,
    Hello,
    InvalidMessage,
    JoinWaitlist,
    Like,
    Ping,
    Release,
    ack_message,
    error_message,
    notice_message,
    parse_frame,
    pong_message,
    request_id_of,
)

LIMITS = Limits()
# The core's frames and a feature's (the auctions' `bid`), as an engine with it decodes them.
SCHEMA = FrameSchema([Bid])


def frames(body: Any) -> list[tuple[Codec, bytes]]:
    """`body` as a frame of each codec that can carry it (JSON has no bytes, msgpack no
    integers beyond 64 bits)."""
    found = []
    with contextlib.suppress(TypeError, OverflowError):
        found.append((Codec.MSGPACK, msgpack.packb(body, use_bin_type=True)))
    with contextlib.suppress(TypeError):
        found.append((Codec.JSON, json.dumps(body).encode()))
    assert found, body
    return found


def parse(body: Any, limits: Limits = LIMITS) -> ClientMessage | Bid:
    """What `body` parses to, the same in every codec."""
    [message] = {parse_frame(frame, codec, limits, SCHEMA) for codec, frame in frames(body)}
    return message


def rejected(body: Any, limits: Limits = LIMITS) -> ProtocolError:
    """How `body` is refused, the same in every codec (code, details and ref)."""
    errors = []
    for codec, frame in frames(body):
        with pytest.raises(ProtocolError) as info:
            parse_frame(frame, codec, limits, SCHEMA)
        errors.append(info.value)
    assert len({(e.code, repr(e.details), getattr(e, "ref", None)) for e in errors}) == 1, errors
    return errors[0]


def invalid_field(body: Any) -> str:
    """The field an `invalid_field` rejection names."""
    error = rejected(body)
    assert error.code == "invalid_field", error
    field: str = error.details["field"]
    return field


# ---- parse_frame: valid messages --------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"type": "ping"}, Ping()),
        ({"type": "ping", "id": "p1"}, Ping("p1")),
        ({"type": "ping", "id": None}, Ping()),  # null is absent
        ({"type": "comment", "text": "hi", "id": "c1"}, Comment("hi", "c1")),
        ({"type": "comment", "text": ""}, Comment("")),  # emptiness is checked later
        ({"type": "comment", "text": "x" * MAX_COMMENT_TEXT}, Comment("x" * MAX_COMMENT_TEXT)),
        ({"type": "like", "count": 1}, Like(1)),
        ({"type": "like", "count": LIMITS.max_likes_per_frame}, Like(LIMITS.max_likes_per_frame)),
        ({"type": "hello"}, Hello(token=None, since=None)),
        (
            {"type": "hello", "token": "t", "since": "1732212345678-0"},
            Hello("t", "1732212345678-0"),
        ),
        (
            {"type": "hello", "since": f"{2**64 - 1}-{2**64 - 1}"},  # Redis's largest id
            Hello(None, f"{2**64 - 1}-{2**64 - 1}"),
        ),
        ({"type": "hello", "device": "d" * 8}, Hello(None, None, device="d" * 8)),
        ({"type": "hello", "device": "d_-9" * 12}, Hello(device="d_-9" * 12)),
        ({"type": "hello", "token": "t" * MAX_TOKEN}, Hello("t" * MAX_TOKEN, None)),
        ({"type": "hello", "ref": "r" * MAX_REF}, Hello(ref="r" * MAX_REF)),
        ({"type": "ping", "id": "i" * MAX_REQUEST_ID}, Ping("i" * MAX_REQUEST_ID)),
        ({"type": "ping", "unknown": [1]}, Ping()),  # unknown fields are ignored
        ({"id": "p", "type": "ping"}, Ping("p")),  # `type` need not come first
        ({"type": "click", "product": "p12", "id": "k1"}, Click("p12", "k1")),
        ({"type": "grab", "sale": "s1", "id": "g"}, Grab(sale="s1", id="g", quantity=1)),
        ({"type": "grab", "sale": "s123456789", "id": "g", "quantity": 10},
         Grab(sale="s123456789", id="g", quantity=10)),
        ({"type": "release", "reservation": "s1.64"}, Release("s1.64")),
        ({"type": "waitlist", "sale": "s2", "id": "w"}, JoinWaitlist("s2", "w")),
        ({"type": "claim", "drop": "d2", "id": "c"}, Claim("d2", "c")),
        ({"type": "bid", "auction": "a1", "amount": 1}, Bid("a1", 1)),
        ({"type": "bid", "auction": "a1", "amount": 5, "max": 5, "id": "b"}, Bid("a1", 5, 5, "b")),
        ({"type": "bid", "auction": "a1", "amount": MAX_BID, "max": None}, Bid("a1", MAX_BID)),
    ],
)  # fmt: skip
def test_parse_valid(body: dict[str, Any], expected: Any) -> None:
    assert parse(body) == expected


def test_text_and_binary_json_frames() -> None:
    frame = '{"type":"like","count":2,"id":"é"}'
    assert parse_frame(frame, Codec.JSON, LIMITS) == Like(2, "é")
    assert parse_frame(frame.encode(), Codec.JSON, LIMITS) == Like(2, "é")


# ---- parse_frame: rejections ------------------------------------------------------------


@pytest.mark.parametrize("body", [None, [], ["ping"], "ping", 1, 1.5, True, b"{}"])
def test_non_object_is_bad_frame(body: Any) -> None:
    error = rejected(body)
    assert error.code == "bad_frame"
    assert not isinstance(error, InvalidMessage)  # no ref, and no token taken


@pytest.mark.parametrize(
    "frame",
    [
        b'{"type": "like", "count": true,',  # a bad field, then not JSON at all
        b'{"type": "ping", "id": "r"} x',
        b'{"type": "ping", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        rb'{"type": "ping", "x": "\ud800"}',  # a lone surrogate, in an ignored field
    ],
)
def test_a_frame_that_does_not_decode_is_bad_frame(frame: bytes) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_frame(frame, Codec.JSON, LIMITS)
    assert info.value.code == "bad_frame"
    assert not isinstance(info.value, InvalidMessage)


def test_msgpack_maps_need_string_keys() -> None:
    for body in ({1: "x", "type": "ping"}, {b"type": "ping"}):
        with pytest.raises(ProtocolError) as info:
            parse_frame(msgpack.packb(body, use_bin_type=True), Codec.MSGPACK, LIMITS)
        assert info.value.code == "bad_frame"


@pytest.mark.parametrize("kind", [None, 1, True, ["ping"], {"t": 1}, b"ping"])
def test_type_must_be_a_string(kind: Any) -> None:
    body = {} if kind is None else {"type": kind}
    assert invalid_field(body) == "type"
    assert invalid_field({**body, "id": 7}) == "type"  # checked before the request id


@pytest.mark.parametrize(
    "kind", ["", "PING", "subscribe", "x" * 100, "Object missing required field `id`",
             "x' - at `$.id`"],
)  # fmt: skip
def test_unknown_type(kind: str) -> None:
    error = rejected({"type": kind, "id": "u1"})
    assert error.code == "unknown_type"
    assert len(error.message) < 80  # the echoed type is truncated
    assert isinstance(error, InvalidMessage)
    assert error.ref == "u1"


@pytest.mark.parametrize("request_id", [1, True, ["a"], {"a": 1}, "i" * (MAX_REQUEST_ID + 1)])
def test_bad_request_id(request_id: Any) -> None:
    assert invalid_field({"type": "ping", "id": request_id}) == "id"
    # Checked before the type and the message's own fields, whatever the key order.
    assert invalid_field({"type": "bogus", "id": request_id}) == "id"
    assert invalid_field({"type": "like", "count": 0, "id": request_id}) == "id"
    assert invalid_field({"id": request_id, "type": "like", "count": 0}) == "id"


def test_refusals_carry_the_ref_of_a_usable_id() -> None:
    error = rejected({"type": "like", "count": 0, "id": "r7"})
    assert isinstance(error, InvalidMessage)
    assert error.ref == "r7"
    error = rejected({"type": "like", "count": LIMITS.max_likes_per_frame + 1, "id": "r8"})
    assert isinstance(error, InvalidMessage)
    assert (error.ref, error.details) == ("r8", {"field": "count"})
    error = rejected({"type": "ping", "id": "i" * (MAX_REQUEST_ID + 1)})
    assert isinstance(error, InvalidMessage)
    assert error.ref is None


@pytest.mark.parametrize("text", [None, 1, True, ["hi"], {"t": "hi"}, b"hi"])
def test_comment_text_must_be_a_string(text: Any) -> None:
    body = {"type": "comment"} if text is None else {"type": "comment", "text": text}
    assert invalid_field(body) == "text"


def test_comment_text_over_the_absolute_ceiling() -> None:
    error = rejected({"type": "comment", "text": "x" * (MAX_COMMENT_TEXT + 1), "id": "c"})
    assert error.code == "too_large"
    assert error.details == {"field": "text", "max": MAX_COMMENT_TEXT}
    assert isinstance(error, InvalidMessage)
    assert error.ref == "c"


@pytest.mark.parametrize(
    "count",
    [None, True, False, 1.0, "1", [1], 0, -1, LIMITS.max_likes_per_frame + 1, 2**64, 2**70],
)
def test_like_count(count: Any) -> None:
    body = {"type": "like"} if count is None else {"type": "like", "count": count}
    assert invalid_field(body) == "count"


@pytest.mark.parametrize("product", [None, 12, "", "12", "p", "p1x", "P1", "p" + "9" * 10, ["p1"],
                                     "p1\n", "p\u0661"])  # fmt: skip
def test_click_product(product: Any) -> None:
    body = {"type": "click"} if product is None else {"type": "click", "product": product}
    assert invalid_field(body) == "product"


def test_like_count_follows_limits() -> None:
    limits = Limits(max_likes_per_frame=5)
    assert parse({"type": "like", "count": 5}, limits) == Like(5)
    assert rejected({"type": "like", "count": 6}, limits).details["field"] == "count"


@pytest.mark.parametrize(
    "since",
    [
        1732212345678,
        True,
        "",
        "abc",
        "1732212345678",
        "1-2-3",
        "-1-0",
        "1-0 ",
        "1-0\n",
        "+",
        "$",
        "a-0",
        f"{'1' * 21}-0",
        f"{'1' * 20}-{'1' * 21}",  # 42 characters: above the length cap
        f"{2**64}-0",  # beyond what Redis accepts
        f"0-{2**64}",
        "\u0661-\u0660",  # Arabic-Indic digits are digits to `\\d`, not to Redis
    ],
)
def test_hello_bad_since(since: Any) -> None:
    assert invalid_field({"type": "hello", "since": since}) == "since"


@pytest.mark.parametrize(
    "device", [1, "short", "d" * 49, "has space!", "\u0661" * 8, "d" * 8 + "\n"]
)
def test_hello_bad_device(device: Any) -> None:
    assert invalid_field({"type": "hello", "device": device}) == "device"


@pytest.mark.parametrize("token", [1, True, ["t"], "t" * (MAX_TOKEN + 1)])
def test_hello_bad_token(token: Any) -> None:
    assert invalid_field({"type": "hello", "token": token}) == "token"


@pytest.mark.parametrize("ref", [1, ["r"], "r" * (MAX_REF + 1)])
def test_hello_bad_ref(ref: Any) -> None:
    assert invalid_field({"type": "hello", "ref": ref}) == "ref"


# The flash-sale, coupon, auction messages: protocol.md's tables, rule by rule.
BAD_IDS = [None, 1, "", "x1", "s", "s1x", "S1", "s1234567890", "s1\n", "s\u0661", ["s1"]]


@pytest.mark.parametrize("sale", BAD_IDS)
def test_grab_and_waitlist_sale(sale: Any) -> None:
    for kind in ("grab", "waitlist"):
        body = {"type": kind, "id": "r"} | ({} if sale is None else {"sale": sale})
        assert invalid_field(body) == "sale"


@pytest.mark.parametrize("quantity", [None, 0, 11, -1, True, 1.0, "1", [1]])
def test_grab_quantity(quantity: Any) -> None:
    # Unlike other fields, an explicit null is not absent.
    assert invalid_field({"type": "grab", "sale": "s1", "id": "g", "quantity": quantity}) == (
        "quantity"
    )


@pytest.mark.parametrize("kind", ["grab", "claim"])
@pytest.mark.parametrize("request_id", [None, ""])
def test_grab_and_claim_need_a_request_id_checked_first(kind: str, request_id: Any) -> None:
    target = {"grab": "sale", "claim": "drop"}[kind]
    rest = {} if request_id is None else {"id": request_id}
    for body in (
        {"type": kind, target: "x9", **rest},  # a bad id first in the frame...
        {**rest, "type": kind, target: "x9"},  # ...or last
        {"type": kind, "quantity": 0, **rest},
    ):
        if kind == "claim":
            body.pop("quantity", None)
        error = rejected(body)
        assert error.details == {"field": "id"}, body
        assert getattr(error, "ref", None) == request_id


@pytest.mark.parametrize("drop", [None, 2, "", "d", "d1x", "D1", "s1", "d1234567890", "d1\n"])
def test_claim_drop(drop: Any) -> None:
    body = {"type": "claim", "id": "c"} | ({} if drop is None else {"drop": drop})
    assert invalid_field(body) == "drop"


@pytest.mark.parametrize(
    "reservation", [None, 1, "", "nope", "s1", "s1.", "s1.x", ".1", "s1.1234567890123", "s1.1\n"]
)
def test_release_reservation(reservation: Any) -> None:
    body = {"type": "release"} | ({} if reservation is None else {"reservation": reservation})
    assert invalid_field(body) == "reservation"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"amount": 5}, "auction"),
        ({"auction": "x1", "amount": 5}, "auction"),
        ({"auction": "a1"}, "amount"),
        ({"auction": "a1", "amount": 0}, "amount"),
        ({"auction": "a1", "amount": MAX_BID + 1}, "amount"),
        ({"auction": "a1", "amount": True}, "amount"),
        ({"auction": "a1", "amount": 2.5}, "amount"),
        ({"auction": "a1", "amount": 5, "max": 4}, "max"),
        ({"auction": "a1", "amount": 5, "max": MAX_BID + 1}, "max"),
        ({"auction": "a1", "amount": 5, "max": "9"}, "max"),
    ],
)
def test_bid_fields(body: dict[str, Any], field: str) -> None:
    error = rejected({"type": "bid", "id": "b", **body})
    assert error.details == {"field": field}
    assert getattr(error, "ref", None) == "b"


def test_request_id_of() -> None:
    assert request_id_of({"type": "x", "id": "abc"}) == "abc"
    assert request_id_of({"id": "i" * MAX_REQUEST_ID}) == "i" * MAX_REQUEST_ID
    assert request_id_of({"id": "i" * (MAX_REQUEST_ID + 1)}) is None
    assert request_id_of({"id": 7}) is None
    assert request_id_of({}) is None
    assert request_id_of(["id"]) is None


# ---- server messages --------------------------------------------------------------------


def test_error_message() -> None:
    error = RateLimitedError("slow down", details={"retry_after_ms": 250})
    assert error_message(error, "r1") == {
        "type": "error",
        "code": "rate_limited",
        "message": "slow down",
        "retryable": True,
        "details": {"retry_after_ms": 250},
        "ref": "r1",
    }
    assert "ref" not in error_message(ProtocolError("bad"))
    assert error_message(ProtocolError("bad"))["code"] == "bad_frame"


def test_ack_pong_notice() -> None:
    assert ack_message("r", id="1-0") == {"type": "ack", "id": "1-0", "ref": "r"}
    assert ack_message(None) == {"type": "ack"}
    assert pong_message("p", 123) == {"type": "pong", "t": 123, "ref": "p"}
    assert pong_message(None, 5) == {"type": "pong", "t": 5}
    assert notice_message("muted", until=9) == {"type": "notice", "kind": "muted", "until": 9}


def test_stream_ids() -> None:
    assert entry_timestamp_ms("1732212345678-3") == 1732212345678
    assert stream_id_key("1732212345678-3") == (1732212345678, 3)
    assert stream_id_key("5") == (5, 0)
    # Numeric, not lexicographic, order.
    assert stream_id_key("10-0") > stream_id_key("9-5")
    assert stream_id_key("9-10") > stream_id_key("9-9")


# ---- roles and close codes --------------------------------------------------------------


def test_roles() -> None:
    assert {r for r in Role if r.privileged} == {Role.HOST, Role.MODERATOR}
    assert {r for r in Role if not r.can_comment} == {Role.ANONYMOUS}


@pytest.mark.parametrize(
    ("code", "reconnect"),
    [
        (CloseCode.NORMAL, False),
        (CloseCode.GOING_AWAY, True),
        (CloseCode.MESSAGE_TOO_BIG, False),
        (CloseCode.SLOW_CONSUMER, True),
        (CloseCode.OVERLOADED, True),
        (CloseCode.HELLO_TIMEOUT, True),
        (CloseCode.AUTH_FAILED, False),
        (CloseCode.BANNED, False),
        (CloseCode.PROTOCOL_ABUSE, False),
        (CloseCode.ROOM_NOT_FOUND, False),
    ],
)
def test_close_code_reconnect(code: CloseCode, reconnect: bool) -> None:
    assert code.reconnect is reconnect


def test_close_code_values() -> None:
    assert (CloseCode.GOING_AWAY, CloseCode.SLOW_CONSUMER, CloseCode.AUTH_FAILED) == (
        1001,
        3001,
        3500,
    )


# ---- ConnectionGuard, with an injected clock --------------------------------------------

# 4 tokens a second: 0.25 s is exactly one token in binary floating point.
GUARD_LIMITS = Limits(messages_per_second=4.0, message_burst=3, max_errors=3, error_window_s=10.0)


def test_guard_burst_then_limited() -> None:
    guard = ConnectionGuard(GUARD_LIMITS, now=100.0)
    assert [guard.admit(100.0) for _ in range(4)] == [True, True, True, False]
    assert guard.retry_after_ms() == 250


def test_guard_refills_at_rate() -> None:
    guard = ConnectionGuard(GUARD_LIMITS, now=0.0)
    for _ in range(3):
        assert guard.admit(0.0)
    assert guard.admit(0.125) is False  # half a token
    assert guard.retry_after_ms() == 125
    assert guard.admit(0.25) is True  # the second half arrived
    assert guard.admit(0.25) is False
    assert guard.admit(0.75) is True  # two tokens refilled...
    assert guard.admit(0.75) is True
    assert guard.admit(0.75) is False  # ...and spent


def test_guard_refill_is_capped_at_burst() -> None:
    guard = ConnectionGuard(GUARD_LIMITS, now=0.0)
    assert guard.admit(0.0)
    results = [guard.admit(3600.0) for _ in range(5)]
    assert results == [True, True, True, False, False]


def test_guard_clock_going_backwards_does_not_refill() -> None:
    guard = ConnectionGuard(GUARD_LIMITS, now=10.0)
    for _ in range(3):
        assert guard.admit(10.0)
    assert guard.admit(5.0) is False
    assert guard.retry_after_ms() == 250


def test_guard_retry_after_is_zero_with_tokens_left() -> None:
    guard = ConnectionGuard(GUARD_LIMITS, now=0.0)
    assert guard.retry_after_ms() == 0


def test_guard_error_budget() -> None:
    guard = ConnectionGuard(GUARD_LIMITS, now=0.0)
    assert [guard.record_error(t) for t in (0.0, 1.0, 2.0)] == [False, False, False]
    assert guard.record_error(3.0) is True  # 4 errors within 10 s > max_errors=3


def test_guard_error_budget_forgets_old_errors() -> None:
    guard = ConnectionGuard(GUARD_LIMITS, now=0.0)
    for t in (0.0, 1.0, 2.0):
        assert guard.record_error(t) is False
    # At t=11 the errors at 0 and 1 are outside the 10 s window: 2 remain (2.0 and 11.0).
    assert guard.record_error(11.0) is False
    assert guard.record_error(11.5) is False
    assert guard.record_error(11.9) is True
