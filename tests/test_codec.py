"""engine.realtime.codec: frames in, Python objects (plain or typed) out, with no sockets."""

from __future__ import annotations

from typing import Any

import msgpack
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.core.errors import ERROR_CODES, LivecartError, ProtocolError
from engine.core.settings import Limits
from engine.realtime.codec import SUBPROTOCOLS, Codec
from engine.realtime.protocol import Comment, Hello, Like, Ping, parse_frame

LIMITS = Limits()
MAX = LIMITS.max_frame_bytes

MESSAGE: dict[str, Any] = {
    "type": "comment",
    "id": "r1",
    "text": "héllo 👋",
    "nested": {"n": [1, 2.5, None, True]},
}


def decode_error(codec: Codec, frame: bytes | str, max_bytes: int = MAX) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        codec.decode(frame, max_bytes=max_bytes)
    return info.value


# ---- negotiation ----------------------------------------------------------------------


def test_subprotocols_and_frame_kinds() -> None:
    assert SUBPROTOCOLS == ("livecart.v1.json", "livecart.v1.msgpack")
    assert Codec.JSON.subprotocol == "livecart.v1.json"
    assert Codec.JSON.text is True
    assert Codec.MSGPACK.text is False


def test_for_subprotocol() -> None:
    assert Codec.for_subprotocol(None) is Codec.JSON
    assert Codec.for_subprotocol("livecart.v1.json") is Codec.JSON
    assert Codec.for_subprotocol("livecart.v1.msgpack") is Codec.MSGPACK
    with pytest.raises(ValueError, match=r"livecart\.v2"):
        Codec.for_subprotocol("livecart.v2")


# ---- round trips ----------------------------------------------------------------------


def test_json_round_trip_bytes_and_text() -> None:
    frame = Codec.JSON.encode(MESSAGE)
    assert isinstance(frame, bytes)
    assert orjson.loads(frame) == MESSAGE
    assert Codec.JSON.decode(frame, max_bytes=MAX) == MESSAGE
    # Text frames arrive as str from the WebSocket layer.
    assert Codec.JSON.decode(frame.decode(), max_bytes=MAX) == MESSAGE


def test_msgpack_round_trip() -> None:
    message = {**MESSAGE, "blob": b"\x00\xff"}
    frame = Codec.MSGPACK.encode(message)
    assert msgpack.unpackb(frame, raw=False) == message
    assert Codec.MSGPACK.decode(frame, max_bytes=MAX) == message


@pytest.mark.parametrize("codec", list(Codec))
def test_frames_decode_into_typed_messages(codec: Codec) -> None:
    frame = codec.encode({"type": "like", "count": 3, "id": "a"})
    assert parse_frame(frame, codec, LIMITS) == Like(3, "a")
    assert codec.decoder(Like)(frame) == Like(3, "a")


# ---- malformed frames -----------------------------------------------------------------


def test_text_frame_on_msgpack_connection() -> None:
    error = decode_error(Codec.MSGPACK, '{"type": "ping"}')
    assert error.code == "bad_frame"
    assert "binary" in error.message
    with pytest.raises(ProtocolError) as info:
        parse_frame('{"type": "ping"}', Codec.MSGPACK, LIMITS)
    assert (info.value.code, info.value.message) == (error.code, error.message)


@pytest.mark.parametrize("codec", list(Codec))
def test_frame_at_limit_is_accepted(codec: Codec) -> None:
    frames = (codec.encode({"type": "comment", "text": "x" * n}) for n in range(100))
    padded = next(frame for frame in frames if len(frame) == 100)
    assert codec.decode(padded, max_bytes=100)["type"] == "comment"
    assert isinstance(parse_frame(padded, codec, Limits(max_frame_bytes=100)), Comment)


@pytest.mark.parametrize("codec", list(Codec))
def test_oversize_frame_is_too_large(codec: Codec) -> None:
    frame = codec.encode({"type": "comment", "text": "x" * 200})
    error = decode_error(codec, frame, max_bytes=len(frame) - 1)
    assert error.code == "too_large"
    assert error.retryable is False
    with pytest.raises(ProtocolError) as info:
        parse_frame(frame, codec, Limits(max_frame_bytes=len(frame) - 1))
    assert info.value.code == "too_large"


def test_oversize_json_text_frame_counts_utf8_bytes() -> None:
    # The limit is in bytes; a text frame of multi-byte characters is larger on the
    # wire than its character count.
    frame = orjson.dumps({"type": "comment", "text": "é" * 100}).decode()
    assert len(frame) < 150 < len(frame.encode())
    assert decode_error(Codec.JSON, frame, max_bytes=150).code == "too_large"
    with pytest.raises(ProtocolError) as info:
        parse_frame(frame, Codec.JSON, Limits(max_frame_bytes=150))
    assert info.value.code == "too_large"


@pytest.mark.parametrize(
    "frame",
    [b"", b"{", b"{'type': 'ping'}", b'{"type": "ping"} x', b'"\xff"', b"1e400", b"[" * 2000],
)
def test_json_garbage_is_bad_frame(frame: bytes) -> None:
    assert decode_error(Codec.JSON, frame).code == "bad_frame"


def test_json_text_with_lone_surrogate_is_bad_frame() -> None:
    assert decode_error(Codec.JSON, '"\ud800"').code == "bad_frame"


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        b"\xc1",  # never-used format byte
        b"\x92\x01",  # array of 2 with one item
        b"\x01\x02",  # extra data after a complete object
        msgpack.packb({1: "int key"}),
        b"\xdd\xff\xff\xff\xff",  # array32 claiming 4 billion items
        b"\xa2\xff\xfe",  # str with invalid UTF-8
    ],
)
def test_msgpack_garbage_is_bad_frame(frame: bytes) -> None:
    error = decode_error(Codec.MSGPACK, frame)
    assert error.code == "bad_frame"
    assert error.message.startswith("invalid msgpack")


# ---- fuzzing: only ProtocolError ever escapes ------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = ["type", "id", "text", "count", "token", "since"]
TYPES = ["comment", "like", "ping", "hello", "bogus", ""]
message_like = st.dictionaries(
    st.sampled_from(FIELDS), json_values | st.sampled_from(TYPES), max_size=5
) | st.fixed_dictionaries(
    {"type": st.sampled_from(TYPES)},
    optional={field: json_values for field in FIELDS[1:]},
)


def _decode_and_parse(codec: Codec, frame: bytes | str) -> None:
    error: LivecartError | None = None
    try:
        message = parse_frame(frame, codec, LIMITS)
    except LivecartError as caught:
        error = caught
    if error is None:
        assert isinstance(message, Comment | Like | Ping | Hello)
    else:
        assert isinstance(error, ProtocolError), repr(error)
        assert error.code in ERROR_CODES


@settings(max_examples=300, database=None)
@given(codec=st.sampled_from(list(Codec)), frame=st.binary(max_size=300) | st.text(max_size=300))
def test_fuzz_random_frames_raise_only_protocol_errors(codec: Codec, frame: bytes | str) -> None:
    _decode_and_parse(codec, frame)


@settings(max_examples=300, database=None)
@given(
    codec=st.sampled_from(list(Codec)),
    body=message_like | json_values,
    cut=st.integers(min_value=0, max_value=8),
)
def test_fuzz_structured_frames_raise_only_protocol_errors(
    codec: Codec, body: Any, cut: int
) -> None:
    try:
        frame = codec.encode(body)
    except (TypeError, ValueError, OverflowError):
        return  # not encodable (e.g. NaN keys, ints beyond 64 bits); nothing to decode
    _decode_and_parse(codec, frame)
    if cut and len(frame) > cut:
        _decode_and_parse(codec, frame[:-cut])  # truncated frames too
