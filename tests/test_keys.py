"""engine.store.keys: every key of a room hashes to one Redis Cluster slot."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis as sync_redis
import redis.asyncio as aioredis

from engine.core.errors import ProtocolError
from engine.store import keys
from engine.store.redis_server import EmbeddedRedis

USERS = ["u1", "Alice.B@example.com", "anon:1f2e", "x" * 64, "a-b_c"]


def crc16_xmodem(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def keyslot(key: str) -> int:
    """Redis Cluster's HASH_SLOT: CRC16 of the first non-empty {hash tag}, mod 16384."""
    raw = key.encode()
    start = raw.find(b"{")
    if start != -1:
        end = raw.find(b"}", start + 1)
        if end > start + 1:
            raw = raw[start + 1 : end]
    return crc16_xmodem(raw) % 16384


def room_keys(room: str, user: str) -> list[str]:
    return [
        keys.room_meta(room),
        keys.room_stream(room),
        keys.room_bus(room),
        keys.likes(room),
        keys.presence(room),
        keys.peak(room),
        keys.uniques(room),
        keys.show_metrics(room),
        keys.show_markers(room),
        keys.paid_buyers(room),
        keys.banned_users(room),
        keys.banned_words(room),
        keys.muted(room, user),
        keys.slow_mode(room, user),
        keys.comment_rate(room, user),
        keys.giveaway_counter(room),
        keys.giveaways(room),
        keys.giveaway(room, "g1"),
        keys.giveaway_entrants(room, "g1"),
        keys.giveaway_keywords(room),
        keys.giveaway_awards(room, "g1"),
        keys.giveaways_closed(room),
        keys.giveaway_room_winners(room),
        keys.watch_ms(room),
        keys.watch_since(room),
        keys.auction_counter(room),
        keys.auctions(room),
        keys.auctions_open(room),
        keys.auction(room, "a1"),
        keys.auction_bids(room, "a1"),
        keys.comment_buy(room),
        keys.comment_buy_recent(room, user, "s1", 2),
        keys.groupbuy_counter(room),
        keys.groupbuys(room),
        keys.groupbuy(room, "gb1"),
        keys.groupbuy_teams(room, "gb1"),
        keys.groupbuy_team(room, "gb1", "t1"),
        keys.groupbuy_due(room),
        keys.referral_names(room),
        keys.referred_by(room),
        keys.referral_board(room),
        keys.reminder_subscribers(room),
        keys.reminder_scan(room),
        keys.reminder_due(room),
        keys.reminder_event(room, "live"),
        keys.reminder_sent(room, "live"),
    ]


def test_keyslot_reference_values() -> None:
    # From the Redis Cluster specification and CLUSTER KEYSLOT documentation.
    assert crc16_xmodem(b"123456789") == 0x31C3
    assert keyslot("somekey") == 11058
    assert keyslot("foo{hash_tag}") == 2515
    assert keyslot("{user1000}.following") == keyslot("{user1000}.followers")
    assert keyslot("foo{}{bar}") == crc16_xmodem(b"foo{}{bar}") % 16384  # empty tag: whole key
    assert keyslot("{a}{b}") == keyslot("a")  # only the first tag counts


@pytest.mark.parametrize("room", ["r1", "show-2024_11", "a", "z" * 40, "0"])
def test_every_room_key_carries_the_room_hash_tag(room: str) -> None:
    for user in USERS:
        for key in room_keys(room, user):
            assert key.startswith("lc:{" + room + "}:"), key
            # The room's tag is the first brace pair, so it is the one Cluster hashes.
            assert key.index("{") == 3
            assert key.index("}") == 4 + len(room)


@pytest.mark.parametrize("room", ["r1", "show-2024_11", "a", "z" * 40, "0"])
def test_all_keys_of_a_room_share_one_slot(room: str) -> None:
    slots = {keyslot(key) for user in USERS for key in room_keys(room, user)}
    assert slots == {crc16_xmodem(room.encode()) % 16384}
    assert keyslot(keys.room_keys_pattern(room).replace("*", "x")) in slots


def test_keys_are_distinct_per_room_and_user() -> None:
    built = room_keys("r1", "u1")
    assert len(set(built)) == len(built)
    assert set(built).isdisjoint(room_keys("r2", "u1"))
    assert keys.muted("r1", "u1") != keys.muted("r1", "u2")
    assert keys.rooms_index() == "lc:rooms"
    assert "{" not in keys.rooms_index()


@pytest.fixture
def cluster_node(tmp_path: Path) -> Iterator[sync_redis.Redis]:
    server = EmbeddedRedis(
        tmp_path / "cluster",
        extra_args=(
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            str((tmp_path / "nodes.conf").resolve()),
        ),
    )
    server.start()
    client = sync_redis.Redis(host="127.0.0.1", port=server.port)
    try:
        yield client
    finally:
        client.close()
        server.stop()


def test_keyslots_match_a_real_cluster_node(cluster_node: sync_redis.Redis) -> None:
    room = f"t-{secrets.token_hex(4)}"
    for key in [*room_keys(room, "Alice.B@example.com"), "somekey", keys.rooms_index()]:
        assert cluster_node.cluster("KEYSLOT", key) == keyslot(key), key


async def test_room_keys_pattern_matches_exactly_the_room(redis: aioredis.Redis) -> None:
    room = f"t-{secrets.token_hex(4)}"
    neighbour = f"{room}-b"  # a room whose id extends this one's
    written = [k for k in room_keys(room, "u1") if k != keys.room_bus(room)]
    for key in [*written, *room_keys(neighbour, "u1")]:
        await redis.set(key, "1")
    found = {k.decode() async for k in redis.scan_iter(match=keys.room_keys_pattern(room))}
    assert found == set(written)
    await redis.delete(*written, *room_keys(neighbour, "u1"))


@pytest.mark.parametrize("room", ["a", "0", "abc-def_1", "z" * 40])
def test_valid_room_ids(room: str) -> None:
    assert keys.check_room_id(room) == room


@pytest.mark.parametrize(
    "room",
    ["", "-a", "_a", "A", "aB", "z" * 41, "a b", "a{b}", "a}", "a:b", "a.b", "a\n", "é", "a*"],
)
def test_invalid_room_ids(room: str) -> None:
    with pytest.raises(ProtocolError) as info:
        keys.check_room_id(room)
    assert info.value.code == "invalid_field"
    assert info.value.details == {"field": "room"}


@pytest.mark.parametrize("user", USERS)
def test_valid_user_ids(user: str) -> None:
    assert keys.check_user_id(user) == user


@pytest.mark.parametrize("user", ["", "x" * 65, "a b", "{u}", "u}", "u*", "u\n", "ü", "u/x"])
def test_invalid_user_ids(user: str) -> None:
    with pytest.raises(ProtocolError) as info:
        keys.check_user_id(user)
    assert info.value.code == "invalid_field"
    assert info.value.details == {"field": "user"}
