"""A viewer's WebSocket connection as the engine runs it (websockets' `ServerConnection`).

Two things differ from a plain connection: a viewer that cannot keep up is dropped (its
write buffer past the high-water mark), and a message that needs no waiting is served as
soon as it is read, in the read's own turn of the event loop, when the connection has
nothing else in hand (`serve_at_once`). In a flash sale's burst 5,000 taps arrive in one
moment; each one served through websockets' queue and the read loop's task cost a queue
entry, a task wake-up and an iterator step before the gateway saw it.

A tap is one small frame, and a read usually holds exactly one: such a read, at a frame
boundary, is decoded here (RFC 6455 § 5.2: a 6-byte header, the payload masked) instead
of by websockets' generator-based parser, which cost about a tenth of the engine's CPU in
the burst. Every other read, and any frame not served at once, goes through websockets as
usual, so its checks and its order hold.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

from websockets.asyncio.server import ServerConnection
from websockets.frames import Frame, Opcode
from websockets.protocol import OPEN, Event
from websockets.streams import StreamReader
from websockets.utils import apply_mask

from engine.core.metrics import METRICS
from engine.realtime.protocol import CloseCode

if TYPE_CHECKING:
    from engine.realtime.hub import Viewer

_DATA = (Opcode.TEXT, Opcode.BINARY)
# The first byte of a whole text or binary frame (FIN, no RSV bits), and whether it is text.
_WHOLE = {0x81: True, 0x82: False}
# websockets' parser rests here between frames (Protocol.parse awaits the next header).
_BETWEEN_FRAMES = StreamReader.at_eof.__code__


class ViewerConnection(ServerConnection):
    """A server connection that drops itself when its write buffer passes the high-water
    mark: a viewer that cannot keep up must not hold the room's memory. It also carries the
    client's address as admitted by the listener (after trusted proxies), and serves a
    frame that needs no waiting as soon as it is read (`serve_at_once`)."""

    client_ip: str | None = None
    viewer: Viewer | None = None  # once joined
    going_away = False  # the engine stops: close with 1001 once joined and answered
    # Once joined (Gateway.handle): serves one whole message now, or returns False to hand
    # it to the read loop.
    serve_at_once: Callable[[str | bytes], bool] | None = None

    def data_received(self, data: bytes) -> None:
        serve = self.serve_at_once
        message = None if serve is None else self._whole_frame(data)
        if message is None:  # websockets reads it
            super().data_received(data)
        elif serve is not None and not serve(message):
            # Not one to serve at once: websockets reads it, and queues it for the read loop.
            self.serve_at_once = None
            try:
                super().data_received(data)
            finally:
                self.serve_at_once = serve

    def _whole_frame(self, data: bytes) -> str | bytes | None:
        """The message in `data` when `data` is one whole masked text or binary frame of
        under 126 bytes, read at a frame boundary while the read loop waits (RFC 6455
        § 5.2); else None, and websockets parses `data` as it would have."""
        size = len(data) - 6  # 2 header bytes, then the 4-byte mask
        text = _WHOLE.get(data[0]) if 0 <= size < 126 else None
        if text is None or data[1] != 0x80 | size:  # masked, its length in the header
            return None
        protocol = self.protocol
        if (
            protocol.state is not OPEN
            or protocol.extensions
            or protocol.current_size is not None  # a fragmented message is in progress
            or protocol.reader.buffer
            or not _between_frames(protocol.parser)
            or (protocol.max_message_size is not None and size > protocol.max_message_size)
            or not self._reader_waits()
        ):
            return None
        return _message(apply_mask(data[6:], data[2:6]), text=text)

    def process_event(self, event: Event) -> None:
        """A whole message read while the read loop waits on an empty queue is served here,
        in the same turn of the loop: a flash sale's taps then cost no task wake-up, queue
        and iterator each (docs/architecture.md). Anything else, and any message the loop
        would not serve at once, goes through websockets' queue as before, so a
        connection's frames are still served in the order they came."""
        if (
            self.serve_at_once is not None
            and isinstance(event, Frame)
            and event.fin
            and event.opcode in _DATA
            and self._reader_waits()
        ):
            message = _message(bytes(event.data), text=event.opcode is Opcode.TEXT)
            if message is not None and self.serve_at_once(message):
                return
        super().process_event(event)

    def _reader_waits(self) -> bool:
        """Whether the read loop is parked in `recv` on an empty queue: then no frame of
        this connection is waiting or being served."""
        waiter = self.recv_messages.frames.get_waiter
        return waiter is not None and not waiter.done()

    def go_away(self) -> None:
        """The engine stops: the joined viewer goes away once its frames are answered
        (Viewer.go_away); a connection still saying hello does once it has joined."""
        self.going_away = True
        if self.viewer is not None:
            self.viewer.go_away()

    def pause_writing(self) -> None:
        super().pause_writing()
        METRICS.disconnects.inc(1, "slow_consumer")
        asyncio.get_running_loop().create_task(
            self.close(CloseCode.SLOW_CONSUMER, "slow consumer: reconnect and resume")
        )


def _message(payload: bytes, *, text: bool) -> str | bytes | None:
    """A whole message's payload as the read loop would receive it (a text frame's
    decoded); None for an empty one, or a text frame that is not UTF-8 (websockets closes
    with 1007): those are left to websockets and the read loop."""
    if not payload or not text:
        return payload or None
    try:
        return payload.decode()
    except UnicodeDecodeError:
        return None


def _between_frames(parser: Generator[None]) -> bool:
    """Whether websockets' parser rests between two frames: the innermost generator it
    waits in is the reader's `at_eof`, which Protocol.parse awaits before each header."""
    inner: Any = parser
    while (awaited := getattr(inner, "gi_yieldfrom", None)) is not None:
        inner = awaited
    return getattr(inner, "gi_code", None) is _BETWEEN_FRAMES
