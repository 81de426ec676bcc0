"""A viewer's WebSocket connection as the engine runs it (websockets' `ServerConnection`).

Two things differ from a plain connection: a viewer that cannot keep up is dropped (its
write buffer past the high-water mark), and a message that needs no waiting is served as
soon as it is read, in the read's own turn of the event loop, when the connection has
nothing else in hand. In a flash sale's burst 5,000 taps arrive in one moment; each one
served through websockets' queue and the read loop's task cost a queue entry, a task
wake-up and an iterator step before the gateway saw it (`serve_at_once`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from websockets.asyncio.server import ServerConnection
from websockets.frames import Frame, Opcode
from websockets.protocol import Event

from engine.core.metrics import METRICS
from engine.realtime.protocol import CloseCode

if TYPE_CHECKING:
    from engine.realtime.hub import Viewer

_DATA = (Opcode.TEXT, Opcode.BINARY)


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
            data: str | bytes
            if event.opcode is Opcode.TEXT:
                try:
                    data = bytes(event.data).decode()
                except UnicodeDecodeError:  # the read loop's recv closes with 1007
                    data = b""
            else:
                data = bytes(event.data)
            if data and self.serve_at_once(data):
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
