"""engine.store.scripts: header contracts, argument checks and NOSCRIPT recovery."""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from engine.store import keys
from engine.store.scripts import Script, Scripts
from tests.conftest import OVERSELL_HOOK

ECHO = """\
-- Store a value and read it back.
-- KEYS[1] - a string key
-- ARGV[1] - the value
-- returns the stored value
redis.call('SET', KEYS[1], ARGV[1])
return redis.call('GET', KEYS[1])
"""

VARIADIC = """\
-- KEYS[1] - a list key
-- ARGV[1] - a prefix
-- ARGV[2..n] - items to push
-- returns the list length
for i = 2, #ARGV do
  redis.call('RPUSH', KEYS[1], ARGV[1] .. ARGV[i])
end
return redis.call('LLEN', KEYS[1])
"""


def unique(source: str) -> str:
    """The same script with a fresh SHA, so no earlier test has loaded it."""
    return f"-- nonce {secrets.token_hex(8)}\n{source}"


@pytest.fixture
async def scripts(redis: aioredis.Redis) -> AsyncIterator[Scripts]:
    loaded = Scripts()
    await loaded.load(redis)
    yield loaded
    await loaded.load(redis)  # leave the shared server's cache as other tests expect it


# ---- header parsing ---------------------------------------------------------------------


def test_parse_fixed_header() -> None:
    script = Script.parse("echo", ECHO)
    assert (script.name, script.num_keys, script.min_args, script.variadic) == ("echo", 1, 1, False)
    assert script.sha == hashlib.sha1(ECHO.encode()).hexdigest()
    assert script.source == ECHO


def test_parse_variadic_header() -> None:
    script = Script.parse("push", VARIADIC)
    assert (script.num_keys, script.min_args, script.variadic) == (1, 1, True)


def test_parse_no_keys() -> None:
    script = Script.parse("t", "-- ARGV[1] - x\n-- returns nil\nreturn nil\n")
    assert (script.num_keys, script.min_args) == (0, 1)


@pytest.mark.parametrize(
    "header",
    [
        "-- KEYS[1] - a\n-- KEYS[3] - c\n",  # gap
        "-- KEYS[2] - b\n",  # does not start at 1
        "-- KEYS[0] - zero\n",
        "-- KEYS[2] - b\n-- KEYS[1] - a\n",  # out of order
    ],
)
def test_parse_rejects_bad_key_numbering(header: str) -> None:
    with pytest.raises(ValueError, match=r"bad\.lua: KEYS header must number 1\.\.n"):
        Script.parse("bad", header + "-- returns 1\nreturn 1\n")


def test_parse_requires_returns_line() -> None:
    with pytest.raises(ValueError, match="must say what the script returns"):
        Script.parse("bad", "-- KEYS[1] - a\nreturn 1\n")


def test_package_scripts_contracts() -> None:
    scripts = Scripts()
    contracts = {name: (s.num_keys, s.min_args, s.variadic) for name, s in scripts.all.items()}
    assert contracts == {
        "bus_publish": (1, 1, False),
        "comment_post": (6, 5, False),
        "comment_delete": (2, 4, False),
        "comment_pin": (2, 3, False),
        "comment_buy_recent": (1, 2, False),
        "room_entry": (1, 5, False),
        "room_create": (1, 0, True),
        "room_transition": (2, 5, False),
        "room_update": (2, 3, True),
        "room_sync": (5, 4, False),
        "viewer_seen": (2, 4, False),
        # a feature's scripts (engine/features/polls/lua), loaded with every other
        "poll_open": (4, 8, False),
        "poll_vote": (2, 3, False),
        "poll_close": (3, 5, False),
        "confirm": (4, 4, False),
        "grab": (7, 3, True),
        "psp_refund": (1, 2, False),
        "product_save": (4, 5, True),
        "product_show": (4, 3, True),
        "release": (7, 5, True),
        "sale_adjust": (8, 6, False),
        "sale_create": (4, 10, True),
        "award": (6, 7, False),
        "auction_create": (4, 6, True),
        "auction_bid": (4, 7, False),
        "auction_close": (3, 4, False),
        "auction_offer": (2, 4, False),
        "waitlist_join": (4, 2, False),
        "coupon_drop": (5, 14, False),
        "coupon_claim": (7, 3, True),
        "checkout": (11, 12, True),
        "order_pay": (10, 8, True),
        "order_release": (6, 5, True),
        "order_refund": (4, 7, True),
        "order_mark": (2, 4, False),
        "giveaway_create": (4, 7, True),
        "giveaway_enter": (2, 3, False),
        "giveaway_close": (6, 9, False),
        "team_join": (10, 8, False),
        "team_settle": (4, 4, True),
        "referral_join": (2, 3, False),
        "reminder_schedule": (2, 4, False),
        "reminder_claim": (2, 4, False),
        "reminder_renew": (2, 4, False),
        "reminder_finish": (2, 6, False),
        "token_revoke": (1, 3, False),
    }
    assert scripts.comment_post is scripts.all["comment_post"]
    assert scripts.room_sync.name == "room_sync"


@pytest.mark.parametrize("name", sorted(Scripts().all))
def test_package_script_bodies_stay_within_their_header(name: str) -> None:
    script = Scripts().all[name]
    body = "\n".join(line for line in script.source.splitlines() if not line.startswith("--"))
    used_keys = {int(n) for n in re.findall(r"KEYS\[(\d+)\]", body)}
    assert used_keys == set(range(1, script.num_keys + 1))
    used_args = {int(n) for n in re.findall(r"ARGV\[(\d+)\]", body)}
    if not script.variadic:
        assert used_args <= set(range(1, script.min_args + 1))


# ---- calls ------------------------------------------------------------------------------


async def test_call_returns_the_script_result(redis: aioredis.Redis) -> None:
    script = Script.parse("echo", unique(ECHO))
    key = f"t-{secrets.token_hex(4)}:echo"
    assert await script(redis, [key], ["hello"]) == b"hello"
    assert await redis.get(key) == b"hello"
    await redis.delete(key)


@pytest.mark.parametrize("key_count", [0, 2])
async def test_wrong_key_count_raises_before_redis(redis: aioredis.Redis, key_count: int) -> None:
    script = Script.parse("echo", unique(ECHO))
    key_names = [f"t-{secrets.token_hex(4)}:k{i}" for i in range(key_count)]
    with pytest.raises(TypeError, match=f"echo: expected 1 keys, got {key_count}"):
        await script(redis, key_names, ["v"])
    assert await redis.script_exists(script.sha) == [False]  # Redis was never asked


@pytest.mark.parametrize("args", [[], ["a", "b"]])
async def test_wrong_arg_count_raises(redis: aioredis.Redis, args: list[str]) -> None:
    script = Script.parse("echo", unique(ECHO))
    with pytest.raises(TypeError, match=f"echo: expected 1 args, got {len(args)}"):
        await script(redis, ["k"], list(args))


async def test_variadic_args(redis: aioredis.Redis) -> None:
    script = Script.parse("push", unique(VARIADIC))
    key = f"t-{secrets.token_hex(4)}:list"
    assert await script(redis, [key], ["p:"]) == 0
    assert await script(redis, [key], ["p:", "a", "b", 3]) == 3
    assert await redis.lrange(key, 0, -1) == [b"p:a", b"p:b", b"p:3"]
    with pytest.raises(TypeError, match="push: expected 1 args, got 0"):
        await script(redis, [key], [])
    await redis.delete(key)


async def test_never_loaded_script_is_loaded_on_first_call(redis: aioredis.Redis) -> None:
    script = Script.parse("echo", unique(ECHO))
    assert await redis.script_exists(script.sha) == [False]
    key = f"t-{secrets.token_hex(4)}:echo"
    assert await script(redis, [key], ["v1"]) == b"v1"
    assert await redis.script_exists(script.sha) == [True]
    await redis.delete(key)


async def test_noscript_recovery_after_script_flush(
    redis: aioredis.Redis, scripts: Scripts
) -> None:
    assert await scripts.loaded(redis) is True
    loaded_sha = await redis.script_load(scripts.room_sync.source)
    assert loaded_sha == scripts.room_sync.sha  # our SHA is the one Redis computes
    room = f"t-{secrets.token_hex(4)}"
    room_keys = [keys.presence(room), keys.likes(room), keys.peak(room), keys.uniques(room),
                 keys.show_metrics(room)]  # fmt: skip
    assert await scripts.room_sync(redis, room_keys, ["p1", 2, 3, 60_000]) == [2, 2, 3, 0]

    await redis.script_flush()
    assert await scripts.loaded(redis) is False
    # The call after the flush reloads the script and still runs exactly once.
    assert await scripts.room_sync(redis, room_keys, ["p1", 2, 4, 60_000]) == [2, 2, 7, 0]
    assert await redis.script_exists(scripts.room_sync.sha) == [True]
    assert await scripts.loaded(redis) is False  # only that one script came back
    await scripts.load(redis)
    assert await scripts.loaded(redis) is True
    await redis.delete(*room_keys)


def test_the_oversell_hook_is_a_test_file_only() -> None:
    """The engine has no switch that removes the stock check; the hook that does lives in
    tests/hooks/oversell (loaded through PYTHONPATH by the load test that needs it)."""
    assert "elseif false then" not in Scripts().grab.source
    show_grab = "from engine.store.scripts import Scripts; print(Scripts().grab.source)"
    hook = subprocess.run(
        [sys.executable, "-c", show_grab],
        env={**os.environ, "PYTHONPATH": str(OVERSELL_HOOK)}, capture_output=True, text=True,
        check=True,
    )  # fmt: skip
    assert "elseif false then" in hook.stdout
    assert "elseif quantity > available then" not in hook.stdout
    assert "WILL OVERSELL" in hook.stderr
