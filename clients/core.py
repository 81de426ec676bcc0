"""The realtime viewer protocol (docs/protocol.md) without I/O: one core for every Python
client of it.

The SDK (`clients/viewer.py`, asyncio `websockets`), the locust viewers
(`loadtests/locust_client.py`, blocking websocket-client under gevent) and the lean load
paths (`loadtests/swarm.py`, `engine/bench/loader.py` over `engine/bench/leanws.py`) each own
their sockets; they feed this module the frames they receive and send the frames it builds.
Nothing here opens, reads, writes, sleeps or waits:

- codecs: `JSON` and `MSGPACK` (`CODECS` by name), named by the engine's subprotocols, and
  `tick_seq`, a msgpack tick's `seq` read without decoding the frame;
- `hello`: the first frame (token, since, device, ref);
- `Session`: one viewer's state across its connections: the resume offset, tick `seq`
  continuity, `gaps` and `duplicates`;
- `Requests`: request ids and the waiters of requests in flight, found again by the `ref`
  of the `ack`, `error` or `pong` that answers them (the waiter is the transport's own:
  an asyncio future, a gevent `AsyncResult`...);
- close codes and refusals: `should_reconnect`, `close_code`, `is_refusal`, `retryable`,
  `retry_after_s` and `shed_delay_s`.
"""

from __future__ import annotations

import itertools
import random
import secrets
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, Generic, NamedTuple, TypeVar

import msgpack
import orjson

Message = dict[str, Any]
W = TypeVar("W")
F = TypeVar("F", bytes, str)

# ---- codecs (docs/protocol.md § Subprotocols) -----------------------------------------------

JSON_SUBPROTOCOL = "livecart.v1.json"  # the engine's names (engine/realtime/codec.py `Codec`)
MSGPACK_SUBPROTOCOL = "livecart.v1.msgpack"


def _json_text(message: Mapping[str, Any]) -> str:
    return orjson.dumps(message).decode()


@dataclass(frozen=True, slots=True)
class Codec(Generic[F]):
    """A subprotocol's frames: `encode` gives what the transport sends (`str` for a text
    frame, `bytes` for a binary one), `decode` takes a received frame's payload."""

    name: str
    subprotocol: str
    binary: bool  # frames go out as binary WebSocket frames (else text)
    encode: Callable[[Mapping[str, Any]], F]
    decode: Callable[[bytes | str], Any]


# The callables are the libraries' own (no Python frame of ours per frame): the lean load
# paths call them in their hot loops.
JSON: Codec[str] = Codec("json", JSON_SUBPROTOCOL, False, _json_text, orjson.loads)
MSGPACK: Codec[bytes] = Codec(
    "msgpack", MSGPACK_SUBPROTOCOL, True, msgpack.packb, partial(msgpack.unpackb, raw=False)
)
CODECS: dict[str, Codec[str] | Codec[bytes]] = {"json": JSON, "msgpack": MSGPACK}

_TICK_PREFIX = b"\xa4type\xa4tick\xa3seq"
_UINT_WIDTH = {0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8}


def tick_seq(payload: bytes) -> int | None:
    """The `seq` of a msgpack tick frame without decoding it (None for any other frame):
    the engine packs a tick as a map whose first keys are "type" ("tick") and "seq"."""
    if payload[1:15] != _TICK_PREFIX or not 0x80 <= payload[0] <= 0x8F:
        return None
    marker = payload[15]
    if marker < 0x80:
        return marker
    width = _UINT_WIDTH.get(marker)
    return int.from_bytes(payload[16 : 16 + width], "big") if width else None


# ---- hello (docs/protocol.md § hello) -------------------------------------------------------


def hello(
    token: str | None = None,
    *,
    since: str | None = None,
    device: str | None = None,
    ref: str | None = None,
) -> Message:
    """The first frame of a connection; absent (None or empty) fields are left out."""
    message: Message = {"type": "hello"}
    if token:
        message["token"] = token
    if since:
        message["since"] = since
    if device:
        message["device"] = device
    if ref:
        message["ref"] = ref
    return message


# ---- offsets and session state (docs/protocol.md § Offsets, § Resume) -------------------------


def offset_key(offset: str) -> tuple[int, int]:
    """An offset (`<ms>-<seq>`) as numbers: offsets order numerically, never as strings."""
    ms, _, seq = offset.partition("-")
    return int(ms), int(seq or 0)


class Joined(NamedTuple):
    """What a welcome means for a client's state."""

    start_over: bool  # a resume the engine could not replay: drop what you hold
    entries: list[Message]  # the history to apply, duplicates left out


class Session:
    """One viewer's protocol state, kept across its connections.

    `hello()` resumes from `offset` (the last welcome's or tick's) once there is one.
    `on_welcome` and `on_tick` take the frames in order and hand back the entries to
    apply; they count what would betray a server bug instead of hiding it: `gaps` (a
    resume that was not `recovered`, a tick `seq` that is not the previous + 1) and
    `duplicates` (entries at or before the offset already held, left out)."""

    __slots__ = ("device", "duplicates", "gaps", "offset", "ref", "seq", "token")

    def __init__(
        self, token: str | None = None, *, device: str | None = None, ref: str | None = None
    ) -> None:
        self.token = token
        self.device = device
        self.ref = ref  # a share link's ref, sent in every hello (the engine keeps first touch)
        self.offset: str | None = None
        self.seq = 0
        self.gaps = 0
        self.duplicates = 0

    @property
    def resuming(self) -> bool:
        """Whether the next hello resumes (carries `since`)."""
        return self.offset is not None

    def hello(self) -> Message:
        return hello(self.token, since=self.offset, device=self.device, ref=self.ref)

    def restart(self) -> None:
        """Forget the resume point: the next hello is a first join."""
        self.offset = None

    def on_welcome(self, welcome: Mapping[str, Any]) -> Joined:
        resumed = self.offset is not None
        recovered = bool(welcome.get("recovered", False))
        history: list[Message] = welcome.get("history", [])
        start_over = resumed and not recovered
        if start_over:
            self.gaps += 1
        entries = self._fresh(history) if resumed and recovered else list(history)
        self.seq = welcome["seq"]
        self.offset = welcome["offset"]
        return Joined(start_over, entries)

    def on_tick(self, tick: Mapping[str, Any]) -> list[Message]:
        seq: int = tick["seq"]
        if seq != self.seq + 1:
            self.gaps += 1
        self.seq = seq
        entries: list[Message] | None = tick.get("entries")
        fresh = self._fresh(entries) if entries else []
        self.offset = tick["offset"]
        return fresh

    def _fresh(self, entries: list[Message]) -> list[Message]:
        if self.offset is None:
            return list(entries)
        mark = offset_key(self.offset)
        fresh = [entry for entry in entries if offset_key(entry["id"]) > mark]
        self.duplicates += len(entries) - len(fresh)
        return fresh


# ---- requests and answers (docs/protocol.md § Session, 4.) -----------------------------------

ANSWERS = frozenset({"ack", "error", "pong"})


class Requests(Generic[W]):
    """Request ids, and the waiters of the requests in flight by id. Ids never repeat for
    one `Requests` (a random prefix, then a counter), so one viewer's ids stay unique
    across its connections (grabs and claims are idempotent per user and id)."""

    __slots__ = ("_ids", "pending", "prefix")

    def __init__(self, prefix: str | None = None) -> None:
        self.prefix = f"{secrets.token_hex(4)}-" if prefix is None else prefix
        self._ids: Iterator[int] = itertools.count(1)
        self.pending: dict[str, W] = {}

    def new_id(self) -> str:
        return f"{self.prefix}{next(self._ids)}"

    def open(
        self, message: Mapping[str, Any], waiter: W, request_id: str | None = None
    ) -> tuple[str, Message]:
        """Wait for an answer with `waiter`: the request id (`request_id`, else a fresh one)
        and the message to send, carrying it as `id`."""
        request_id = request_id or self.new_id()
        self.pending[request_id] = waiter
        return request_id, {**message, "id": request_id}

    def forget(self, request_id: str) -> W | None:
        """Stop waiting (a timeout, a failed send): the waiter, if it was still pending."""
        return self.pending.pop(request_id, None)

    def match(self, message: Mapping[str, Any]) -> W | None:
        """The waiter of the request `message` answers (an ack, error or pong whose `ref`
        is pending), no longer pending; None for any other frame."""
        if message.get("type") not in ANSWERS:
            return None
        ref = message.get("ref")
        return self.pending.pop(ref, None) if isinstance(ref, str) else None

    def drain(self) -> list[W]:
        """Every pending waiter, forgotten: the connection is gone, fail them."""
        waiters = list(self.pending.values())
        self.pending.clear()
        return waiters


# ---- close codes, refusals, shedding (docs/protocol.md § Close codes, § Errors) ----------------

RECONNECT_CODES = frozenset({1001, 1006, 1011, 1012, 1013, 1014})


def should_reconnect(code: int | None) -> bool:
    """Close codes after which a client reconnects and resumes: none (the connection
    dropped), 1001, 1006, 1011-1014 and 3000-3499; not 1000, 1007, 1009, 3500-3999..."""
    if code is None:
        return True
    return code in RECONNECT_CODES or 3000 <= code < 3500


def close_code(payload: bytes) -> int | None:
    """The code of a received close frame's payload (None when it carries none)."""
    return int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None


def is_refusal(message: Mapping[str, Any]) -> bool:
    """An `error` that answers no request: the refusal of a `hello` (before any welcome;
    the engine then closes), or a push such as a ban after it."""
    return message.get("type") == "error" and "ref" not in message


def retryable(error: Mapping[str, Any]) -> bool:
    """Whether the same request (or hello) can succeed later: the error's `retryable`
    flag. A hello refused with a non-retryable error (token_expired, banned,
    room_not_found...) ends a client's reconnecting."""
    return bool(error.get("retryable", False))


def retry_after_s(value: str | None) -> float | None:
    """A shed handshake's `Retry-After` header (whole seconds), or None."""
    value = (value or "").strip()
    return float(value) if value.isascii() and value.isdigit() else None


def shed_delay_s(retry_after: float, rng: random.Random) -> float:
    """How long to stay away after a handshake shed with `Retry-After: retry_after`: at
    least that, plus up to half again at random, so clients shed together do not all come
    back in the same instant."""
    return retry_after * rng.uniform(1.0, 1.5)
