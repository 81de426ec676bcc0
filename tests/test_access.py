"""Revoked tokens and banned users (engine/rooms/access.py): refused over HTTP and at `hello`,
their open sockets closed, everyone else untouched, and only the room's host revokes."""

from __future__ import annotations

import time

import pytest

from clients import HostClient, LivecartClientError, ShopperClient, ViewerClient
from engine.realtime.protocol import CloseCode
from engine.rooms.access import is_revoked
from engine.server.app import Engine
from tests.conftest import SECRET, EngineFactory, RoomFactory, token


def test_tokens_issued_up_to_the_cut_off_second_are_revoked() -> None:
    assert is_revoked(99, 100)
    assert is_revoked(100, 100)  # the same second: cannot tell before from after
    assert not is_revoked(101, 100)
    assert not is_revoked(100, None)


async def closed_with(viewer: ViewerClient) -> tuple[list[str], int | None]:
    """The error codes a viewer received before its socket closed, and the close code."""
    codes: list[str] = []
    while True:
        event = await viewer.next_event(timeout_s=10)
        if event.get("type") == "error":
            codes.append(event["code"])
        if event.get("type") == "closed":
            return codes, event["code"]


async def refusal(client: ShopperClient) -> tuple[int, str]:
    with pytest.raises(LivecartClientError) as refused:
        await client.orders()
    return refused.value.status, refused.value.code


async def test_a_revoked_users_tokens_stop_working_and_newer_ones_work(
    engine: Engine, room_factory: RoomFactory
) -> None:
    room = await room_factory()
    leaked = token(room, "viewer", "leaky", now=time.time() - 10)
    leaky = ViewerClient(engine.ws_url, room, leaked)
    bystander = ViewerClient(engine.ws_url, room, token(room, "viewer", "bystander"))
    await leaky.connect()
    await bystander.connect()
    try:
        async with ShopperClient(engine.base_url, room, leaked) as shopper:
            assert await shopper.orders() == []
            async with HostClient(engine.base_url, room, token(room, "host", "host-1")) as host:
                revoked = await host.call("POST", f"/api/rooms/{room}/revocations",
                                          {"user": "leaky"})  # fmt: skip
                assert revoked["user"] == "leaky"
                assert abs(revoked["revoked_before"] - time.time()) < 5
                listed = await host.call("GET", f"/api/rooms/{room}/revocations")
            assert listed == {"revocations": [revoked]}
            assert await refusal(shopper) == (401, "token_revoked")
        # The open socket is told and closed; no automatic reconnect with that token.
        assert await closed_with(leaky) == (["token_revoked"], CloseCode.AUTH_FAILED)
        again = ViewerClient(engine.ws_url, room, leaked, reconnect=False)
        with pytest.raises(LivecartClientError) as refused:
            await again.connect()
        assert refused.value.code == "token_revoked"
        await again.close()
        # A token issued after the cut-off works; the other viewer never noticed.
        fresh = token(room, "viewer", "leaky", now=time.time() + 2)
        async with ShopperClient(engine.base_url, room, fresh) as shopper:
            assert await shopper.orders() == []
        await bystander.comment("still here")
        assert not bystander.is_closing()
        assert bystander.close_code is None
    finally:
        await leaky.close()
        await bystander.close()


async def test_only_the_rooms_host_revokes(engine: Engine, room_factory: RoomFactory) -> None:
    room, other = await room_factory(), await room_factory()
    body = {"user": "someone"}
    for caller, expected in [
        (token(room, "viewer", "v1"), (403, "forbidden")),
        (token(room, "moderator", "m1"), (403, "forbidden")),
        (token(other, "host", "host-1"), (401, "token_wrong_room")),
    ]:
        async with HostClient(engine.base_url, room, caller) as client:
            with pytest.raises(LivecartClientError) as refused:
                await client.call("POST", f"/api/rooms/{room}/revocations", body)
        assert (refused.value.status, refused.value.code) == expected


async def test_the_cut_off_never_moves_back(engine: Engine, room_factory: RoomFactory) -> None:
    room = await room_factory()
    assert engine.node is not None
    access = engine.node.access
    assert await access.revoke(room, "u1", 2_000_000_000) == 2_000_000_000
    # An engine whose clock is behind revokes again: the later cut-off stays.
    assert await access.revoke(room, "u1", 1_900_000_000) == 2_000_000_000
    assert await access.revocations(room) == {"u1": 2_000_000_000}


async def test_a_banned_user_is_refused_over_http_too(
    engine: Engine, room_factory: RoomFactory
) -> None:
    room = await room_factory()
    buyer = token(room, "viewer", "troll")
    async with ShopperClient(engine.base_url, room, buyer) as shopper:
        assert await shopper.orders() == []
        async with HostClient(engine.base_url, room, token(room, "host", "host-1")) as host:
            await host.call("POST", f"/api/rooms/{room}/bans", {"user": "troll"})
            assert await refusal(shopper) == (403, "banned")
            await host.call("DELETE", f"/api/rooms/{room}/bans/troll")
        assert await shopper.orders() == []


async def test_tokens_of_a_secret_being_rotated_out_keep_working(
    engine_factory: EngineFactory,
) -> None:
    rotated = await engine_factory(secret="new-secret-" + "y" * 21, previous_secrets=(SECRET,))
    room = "rotation"
    async with HostClient(rotated.base_url, room, token(room, "host", "host-1")) as host:
        await host.create_room("Rotation show")  # a token signed with the old secret
        await host.go_live()
    viewer = ViewerClient(rotated.ws_url, room, token(room, "viewer", "old-token"))
    try:
        assert (await viewer.connect())["type"] == "welcome"
    finally:
        await viewer.close()


async def test_a_moderator_cannot_lock_the_host_out(
    engine: Engine, room_factory: RoomFactory
) -> None:
    """Bans, mutes and revocations of the room's host are refused for everyone; the host
    (user host-1, the room's creator) keeps working."""
    room = await room_factory()
    mod = token(room, "moderator", "mod-1")
    async with HostClient(engine.base_url, room, mod) as moderator:
        for call in (lambda: moderator.ban("host-1"), lambda: moderator.mute("host-1", 10)):
            with pytest.raises(LivecartClientError) as refused:
                await call()
            assert (refused.value.status, refused.value.code) == (403, "forbidden")
    async with HostClient(engine.base_url, room, token(room, "host", "host-1")) as host:
        with pytest.raises(LivecartClientError) as refused:
            await host.call("POST", f"/api/rooms/{room}/revocations", {"user": "host-1"})
        assert (refused.value.status, refused.value.code) == (403, "forbidden")
        assert await host.call("GET", f"/api/rooms/{room}/bans") == {"users": []}
        await host.call("POST", f"/api/rooms/{room}/end")  # still the host


async def test_a_ban_reaches_only_roles_below_its_issuer(
    engine: Engine, room_factory: RoomFactory
) -> None:
    """A moderator banning another moderator's id bans that user's viewer tokens, not
    their moderator token; a host's ban reaches the moderator token too."""
    room = await room_factory()
    async with HostClient(engine.base_url, room, token(room, "moderator", "mod-1")) as mod:
        await mod.ban("mod-2")
    as_moderator = token(room, "moderator", "mod-2")
    async with HostClient(engine.base_url, room, as_moderator) as victim:
        assert await victim.call("GET", f"/api/rooms/{room}/bans") == {"users": ["mod-2"]}
    async with ShopperClient(engine.base_url, room, token(room, "viewer", "mod-2")) as viewer:
        assert await refusal(viewer) == (403, "banned")
    async with HostClient(engine.base_url, room, token(room, "host", "host-1")) as host:
        await host.ban("mod-2")
    async with ShopperClient(engine.base_url, room, as_moderator) as victim_again:
        assert await refusal(victim_again) == (403, "banned")
