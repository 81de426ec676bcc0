"""Calls of one Lua script for one room, sent together while an earlier call is under way.

Every viewer comment is one call of `comment_post.lua`. In `livecart bench fanout`'s
saturation (about 750 comments a second at 2,000 viewers) each call cost the engine a full
redis-py round trip (the pool, the retry wrapper, the reply's timeout), a third of what a
comment cost. Here a room's first call goes out at once, as before; calls that arrive while
it is under way wait for it and then go out together in one pipeline, each still its own
script call (same checks, same answer), in the order they arrived. So a quiet room pays no
delay and a busy one pays one round trip per batch. A call whose caller has gone (its
future cancelled) before its batch leaves is not sent.

The room's keys share its `{room}` hash tag, so a batch goes to one Redis Cluster node.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError, ResponseError

from engine.store.scripts import RedisArg, Script, Scripts

MAX_BATCH = 128  # calls per pipeline; more wait for the next one

# One waiting call: its keys, its arguments, and the future its caller awaits.
Waiting = tuple[list[str], list[RedisArg], asyncio.Future[Any]]


class ScriptBatch:
    def __init__(self, redis: Redis, scripts: Scripts, name: str) -> None:
        self.redis = redis
        self.scripts = scripts
        self.name = name
        # Per room: the calls waiting for the one under way (absent: none under way).
        self.waiting: dict[str, deque[Waiting]] = {}
        self.sending: set[asyncio.Task[None]] = set()  # held until done (asyncio keeps weak ones)

    async def call(self, room: str, keys: list[str], args: list[RedisArg]) -> Any:
        """The script's reply (or its error) for this one call."""
        queue = self.waiting.get(room)
        if queue is not None:  # a call is under way: join the next batch
            future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            queue.append((keys, args, future))
            return await future
        self.waiting[room] = deque()
        try:
            return await self.script(self.redis, keys, args)
        finally:
            self._next(room)

    def _next(self, room: str) -> None:
        """The call under way returned: send what waited, or say nothing is under way."""
        queue = self.waiting[room]
        while queue and queue[0][2].cancelled():
            queue.popleft()
        if not queue:
            del self.waiting[room]
            return
        batch = [queue.popleft() for _ in range(min(MAX_BATCH, len(queue)))]
        task = asyncio.get_running_loop().create_task(self._send(room, batch))
        self.sending.add(task)
        task.add_done_callback(self.sending.discard)

    async def _send(self, room: str, batch: list[Waiting]) -> None:
        replies: list[Any]
        try:
            replies = await self._pipeline([(keys, args) for keys, args, _ in batch])
        except Exception as exc:  # the connection failed: every call of the batch fails
            replies = [exc] * len(batch)
        except BaseException:  # cancelled: the engine stops, and so does every waiting call
            for *_, future in [*batch, *self.waiting.pop(room, ())]:
                future.cancel()
            raise
        for (*_, future), reply in zip(batch, replies, strict=True):
            if future.done():
                continue
            if isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result(reply)
        self._next(room)

    @property
    def script(self) -> Script:
        """Looked up at each call: the scripts are built again for the bus's pub/sub
        flavour once the engine knows it (Scripts.use)."""
        return self.scripts.all[self.name]

    async def _pipeline(self, calls: list[tuple[list[str], list[RedisArg]]]) -> list[Any]:
        """Each call's reply or error, in order; calls refused for an empty script cache
        (Redis restarted) run again after the script is loaded."""
        script = self.script
        async with self.redis.pipeline(transaction=False) as pipe:
            for keys, args in calls:
                script.check(keys, args)
                pipe.evalsha(script.sha, len(keys), *keys, *args)
            replies: list[Any] = await pipe.execute(raise_on_error=False)
        for index, reply in enumerate(replies):
            if isinstance(reply, NoScriptError):
                replies[index] = await _reply_or_error(script(self.redis, *calls[index]))
            elif isinstance(reply, ResponseError):
                script.count_error(calls[index][0])
        return replies


async def _reply_or_error(call: Any) -> Any:
    try:
        return await call
    except ResponseError as exc:
        return exc
