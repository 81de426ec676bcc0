"""engine.realtime.protocol: message validation, server messages, close codes and the guard."""

from __future__ import annotations

from typing import Any

import pytest

from engine.core.errors import ProtocolError, RateLimitedError
from engine.core.identity import Role
from engine.core.settings import Limits
from engine.core.stream_ids import entry_timestamp_ms, stream_id_key
from engine.realtime.protocol import (
    MAX_COMMENT_TEXT,
    MAX_REQUEST_ID,
    MAX_TOKEN,
    Click,
    CloseCode,
    Comment,
    ConnectionGuard,
    Hello,
    Like,
    Ping,
    ack_message,
    error_message,
    notice_message,
    parse_message,
    pong_message,
    request_id_of,
)

LIMITS = Limits()


def rejected(body: Any, limits: Limits = LIMITS) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        parse_message(body, limits)
    return info.value


def invalid_field(body: Any) -> str:
    """The field an `invalid_field` rejection names."""
    error = rejected(body)
    assert error.code == "invalid_field", error
    field: str = error.details["field"]
    return field


# ---- parse_message: valid messages ------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"type": "ping"}, Ping()),
        ({"type": "ping", "id": "p1"}, Ping("p1")),
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
        ({"type": "hello", "token": "t" * MAX_TOKEN}, Hello("t" * MAX_TOKEN, None)),
        ({"type": "ping", "id": "i" * MAX_REQUEST_ID}, Ping("i" * MAX_REQUEST_ID)),
        ({"type": "ping", "unknown": [1]}, Ping()),  # unknown fields are ignored
        ({"type": "click", "product": "p12", "id": "k1"}, Click("p12", "k1")),
    ],
)
def test_parse_valid(body: dict[str, Any], expected: Any) -> None:
    assert parse_message(body, LIMITS) == expected


# ---- parse_message: rejections ----------------------------------------------------------


@pytest.mark.parametrize("body", [None, [], ["ping"], "ping", 1, 1.5, True, b"{}"])
def test_non_object_is_bad_frame(body: Any) -> None:
    assert rejected(body).code == "bad_frame"


@pytest.mark.parametrize("kind", [None, 1, True, ["ping"], {"t": 1}])
def test_type_must_be_a_string(kind: Any) -> None:
    body = {} if kind is None else {"type": kind}
    assert invalid_field(body) == "type"


@pytest.mark.parametrize("kind", ["", "PING", "subscribe", "x" * 100])
def test_unknown_type(kind: str) -> None:
    error = rejected({"type": kind})
    assert error.code == "unknown_type"
    assert len(error.message) < 80  # the echoed type is truncated


@pytest.mark.parametrize("request_id", [1, True, ["a"], {"a": 1}, "i" * (MAX_REQUEST_ID + 1)])
def test_bad_request_id(request_id: Any) -> None:
    assert invalid_field({"type": "ping", "id": request_id}) == "id"


@pytest.mark.parametrize("text", [None, 1, True, ["hi"], {"t": "hi"}, b"hi"])
def test_comment_text_must_be_a_string(text: Any) -> None:
    body = {"type": "comment"} if text is None else {"type": "comment", "text": text}
    assert invalid_field(body) == "text"


def test_comment_text_over_the_absolute_ceiling() -> None:
    error = rejected({"type": "comment", "text": "x" * (MAX_COMMENT_TEXT + 1)})
    assert error.code == "too_large"
    assert error.details == {"field": "text", "max": MAX_COMMENT_TEXT}


@pytest.mark.parametrize(
    "count",
    [None, True, False, 1.0, "1", [1], 0, -1, LIMITS.max_likes_per_frame + 1, 2**70],
)
def test_like_count(count: Any) -> None:
    body = {"type": "like"} if count is None else {"type": "like", "count": count}
    assert invalid_field(body) == "count"


@pytest.mark.parametrize("product", [None, 12, "", "12", "p", "p1x", "P1", "p" + "9" * 10, ["p1"]])
def test_click_product(product: Any) -> None:
    body = {"type": "click"} if product is None else {"type": "click", "product": product}
    assert invalid_field(body) == "product"


def test_like_count_follows_limits() -> None:
    limits = Limits(max_likes_per_frame=5)
    assert parse_message({"type": "like", "count": 5}, limits) == Like(5)
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


@pytest.mark.parametrize("device", [1, "short", "d" * 49, "has space!", "\u0661" * 8])
def test_hello_bad_device(device: Any) -> None:
    assert invalid_field({"type": "hello", "device": device}) == "device"


@pytest.mark.parametrize("token", [1, True, ["t"], "t" * (MAX_TOKEN + 1)])
def test_hello_bad_token(token: Any) -> None:
    assert invalid_field({"type": "hello", "token": token}) == "token"


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
