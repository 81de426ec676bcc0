"""Cross-process fan-out: one channel subscription per room that has viewers on this
process. With plain pub/sub that is one connection per engine process; with sharded
pub/sub (engine/store/bus.py) one per Redis shard that owns such a room.

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
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import ClusterPubSub
from redis.exceptions import RedisError

from engine.core.loop import stop_tasks
from engine.core.metrics import METRICS
from engine.store import keys, redis_client
from engine.store.bus import PubSubMode

log = logging.getLogger("livecart.broker")

OnMessage = Callable[[str, bytes], None]
OnSubscribed = Callable[[str], Awaitable[None]]

_POLL_S = 0.05
_CHANNEL_PREFIX_LEN = len(keys.PREFIX) + 2  # "lc:{"


def room_of_channel(channel: str) -> str:
    """`lc:{room}:bus` -> `room`."""
    return channel[_CHANNEL_PREFIX_LEN : channel.index("}")]


class Broker:
    def __init__(self, redis: Redis, on_message: OnMessage, on_subscribed: OnSubscribed,
                 mode: PubSubMode = PubSubMode.PLAIN) -> None:  # fmt: skip
        self.redis = redis
        self.mode = mode
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
            await stop_tasks([self._task])
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
                if attempt:  # a cluster may have failed over: learn who owns which slot now
                    await redis_client.refresh_topology(self.redis)
                if self.mode is PubSubMode.SHARDED:
                    for room in list(self.rooms):  # one by one: rooms sit in different slots
                        await pubsub.ssubscribe(keys.room_bus(room))
                else:
                    channels = [keys.room_bus(room) for room in self.rooms]
                    # A per-process channel keeps the connection subscribed with no rooms.
                    await pubsub.subscribe(f"{keys.PREFIX}:node", *channels)
                self.connected.set()
                attempt = 0
                await self._pump(pubsub)
            # Any Redis error, not only a lost connection: mid-failover a shard can answer
            # MOVED or CLUSTERDOWN to a subscription, and the broker must not die of it.
            except (RedisError, OSError) as exc:
                self.connected.clear()
                if self._stopping.is_set():
                    return
                METRICS.broker_reconnects.inc()
                attempt += 1
                delay = min(5.0, 0.1 * 2**attempt) * random.uniform(0.5, 1.0)
                log.warning("pub/sub lost (%s); subscribing again in %.2fs", exc, delay)
                await asyncio.sleep(delay)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()

    async def _pump(self, pubsub: PubSub) -> None:
        sharded = self.mode is PubSubMode.SHARDED
        while True:
            while not self._requests.empty():
                action, room = self._requests.get_nowait()
                channel = keys.room_bus(room)
                if action == "subscribe" and room in self.rooms:
                    await (pubsub.ssubscribe if sharded else pubsub.subscribe)(channel)
                elif action == "unsubscribe" and room not in self.rooms:
                    await (pubsub.sunsubscribe if sharded else pubsub.unsubscribe)(channel)
            message = await self._next_message(pubsub)
            if message is None:
                continue
            kind = message["type"]
            channel = message["channel"].decode()
            if channel == f"{keys.PREFIX}:node":
                continue
            if kind == self.mode.message_kind:
                self.on_message(room_of_channel(channel), message["data"])
            elif kind == self.mode.subscribed_kind:
                room = room_of_channel(channel)
                if room in self.rooms:
                    await self.on_subscribed(room)

    async def _next_message(self, pubsub: PubSub) -> dict[str, Any] | None:
        if self.mode is PubSubMode.SHARDED and not pubsub.shard_channels:
            await asyncio.sleep(_POLL_S)  # nothing to read from: no connection is open
            return None
        if self.mode is PubSubMode.SHARDED and isinstance(pubsub, ClusterPubSub):
            # One connection per shard, read in turn.
            message = await pubsub.get_sharded_message(timeout=_POLL_S / 4)
        else:
            message = await pubsub.get_message(timeout=_POLL_S)
        return message
