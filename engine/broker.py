"""Cross-process fan-out: one Redis pub/sub connection per engine process, one channel
subscription per room that has viewers on this process.

All pub/sub operations run in the broker's own task (subscribe requests are queued to
it) because one pub/sub connection must not be read and reconnected from two tasks.
Every time Redis confirms a subscription (first time, or after a reconnect) the broker
awaits `on_subscribed(room)` before reading further messages, so the room hub can
backfill from the room log whatever was published while it was not listening.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from engine import keys
from engine.metrics import METRICS

log = logging.getLogger("livecart.broker")

OnMessage = Callable[[str, bytes], None]
OnSubscribed = Callable[[str], Awaitable[None]]

_POLL_S = 0.05
_CHANNEL_PREFIX_LEN = len(keys.PREFIX) + 2  # "lc:{"


def room_of_channel(channel: str) -> str:
    """`lc:{room}:bus` -> `room`."""
    return channel[_CHANNEL_PREFIX_LEN : channel.index("}")]


class Broker:
    def __init__(self, redis: Redis, on_message: OnMessage, on_subscribed: OnSubscribed) -> None:
        self.redis = redis
        self.on_message = on_message
        self.on_subscribed = on_subscribed
        self.rooms: set[str] = set()
        self._requests: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self.connected = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="livecart-broker")

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task], timeout=5.0)
            self._task = None

    def subscribe(self, room: str) -> None:
        """Ask for the room's channel; `on_subscribed(room)` runs once Redis confirms."""
        self.rooms.add(room)
        self._requests.put_nowait(("subscribe", room))

    def unsubscribe(self, room: str) -> None:
        self.rooms.discard(room)
        self._requests.put_nowait(("unsubscribe", room))

    async def _run(self) -> None:
        attempt = 0
        while not self._stopping.is_set():
            pubsub = self.redis.pubsub()
            try:
                channels = [keys.room_bus(room) for room in self.rooms]
                # A per-process channel keeps the connection subscribed even with no rooms.
                await pubsub.subscribe(f"{keys.PREFIX}:node", *channels)
                self.connected.set()
                attempt = 0
                await self._pump(pubsub)
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                self.connected.clear()
                if self._stopping.is_set():
                    return
                METRICS.broker_reconnects.inc()
                attempt += 1
                delay = min(5.0, 0.1 * 2**attempt) * random.uniform(0.5, 1.0)
                log.warning("pub/sub connection lost (%s); reconnecting in %.2fs", exc, delay)
                await asyncio.sleep(delay)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _pump(self, pubsub: PubSub) -> None:
        while True:
            while not self._requests.empty():
                action, room = self._requests.get_nowait()
                channel = keys.room_bus(room)
                if action == "subscribe" and room in self.rooms:
                    await pubsub.subscribe(channel)
                elif action == "unsubscribe" and room not in self.rooms:
                    await pubsub.unsubscribe(channel)
            message = await pubsub.get_message(timeout=_POLL_S)
            if message is None:
                continue
            kind = message["type"]
            channel = message["channel"].decode()
            if channel == f"{keys.PREFIX}:node":
                continue
            if kind == "message":
                self.on_message(room_of_channel(channel), message["data"])
            elif kind == "subscribe":
                room = room_of_channel(channel)
                if room in self.rooms:
                    await self.on_subscribed(room)
