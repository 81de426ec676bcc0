"""Calls of one script for one room sent together while one is under way
(engine/store/script_batch.py), against a real Redis."""

from __future__ import annotations

import asyncio
import secrets

import pytest
from redis import asyncio as aioredis
from redis.exceptions import ResponseError

from engine.store.script_batch import ScriptBatch
from engine.store.scripts import Script, Scripts

# Appends ARGV[1] to a list and answers the list's length; "boom" is refused with an error.
APPEND = Script.parse(
    "append_test",
    """-- Append a value (a test script).
-- KEYS[1] - the list
-- ARGV[1] - the value
-- returns the list's length
if ARGV[1] == "boom" then return redis.error_reply("refused") end
return redis.call("RPUSH", KEYS[1], ARGV[1])
""",
)


@pytest.fixture
def scripts() -> Scripts:
    """The engine's scripts, with the test script among them."""
    built = Scripts()
    built.all["append_test"] = APPEND
    return built


@pytest.fixture
def key() -> str:
    return f"{{t{secrets.token_hex(4)}}}:list"


async def test_calls_arriving_together_run_once_each_in_arrival_order(
    redis: aioredis.Redis, scripts: Scripts, key: str
) -> None:
    batch = ScriptBatch(redis, scripts, "append_test")
    sent: list[int] = []
    pipeline = redis.pipeline

    def counting_pipeline(*args: object, **kwargs: object) -> object:
        sent.append(1)
        return pipeline(*args, **kwargs)  # type: ignore[arg-type]

    redis.pipeline = counting_pipeline  # type: ignore[method-assign]
    try:
        replies = await asyncio.gather(*(batch.call("r", [key], [str(n)]) for n in range(50)))
    finally:
        redis.pipeline = pipeline  # type: ignore[method-assign]
    assert sorted(replies) == list(range(1, 51))
    assert replies == list(range(1, 51))  # answered as they ran: in the order they came
    assert await redis.lrange(key, 0, -1) == [str(n).encode() for n in range(50)]
    assert sent == [1]  # the first went alone; the 49 behind it in one pipeline
    assert batch.waiting == {}  # nothing under way any more


async def test_an_error_answers_only_its_own_call(
    redis: aioredis.Redis, scripts: Scripts, key: str
) -> None:
    batch = ScriptBatch(redis, scripts, "append_test")
    results = await asyncio.gather(
        *(batch.call("r", [key], [value]) for value in ["a", "b", "boom", "c"]),
        return_exceptions=True,
    )
    assert results[:2] == [1, 2]
    assert isinstance(results[2], ResponseError)
    assert results[3] == 3


async def test_a_call_given_up_before_its_batch_leaves_is_not_sent(
    redis: aioredis.Redis, scripts: Scripts, key: str
) -> None:
    batch = ScriptBatch(redis, scripts, "append_test")
    first = asyncio.create_task(batch.call("r", [key], ["first"]))
    await asyncio.sleep(0)  # under way
    gone = asyncio.create_task(batch.call("r", [key], ["gone"]))
    kept = asyncio.create_task(batch.call("r", [key], ["kept"]))
    await asyncio.sleep(0)  # both wait behind it
    gone.cancel()
    assert await first == 1
    assert await kept == 2
    assert await redis.lrange(key, 0, -1) == [b"first", b"kept"]


async def test_a_script_cache_emptied_meanwhile_is_filled_again(
    redis: aioredis.Redis, scripts: Scripts, key: str
) -> None:
    """Redis restarted (its scripts forgotten) between two batches."""
    batch = ScriptBatch(redis, scripts, "append_test")
    assert await batch.call("r", [key], ["a"]) == 1
    await redis.script_flush()
    replies = await asyncio.gather(*(batch.call("r", [key], [v]) for v in "bcd"))
    assert replies == [2, 3, 4]


async def test_rooms_do_not_wait_for_each_other(
    redis: aioredis.Redis, scripts: Scripts, key: str
) -> None:
    batch = ScriptBatch(redis, scripts, "append_test")
    other = key.replace("}", "x}")
    replies = await asyncio.gather(batch.call("r", [key], ["a"]), batch.call("s", [other], ["b"]))
    assert replies == [1, 1]
