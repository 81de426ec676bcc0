"""The viewer gateway end to end: real engine, real Redis, real WebSockets."""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
import time
from typing import Any

import msgpack
import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from clients import HostClient, LivecartClientError, ViewerClient
from engine.core.metrics import METRICS
from engine.core.settings import Limits
from engine.realtime.protocol import CloseCode
from engine.realtime.viewer_connection import ViewerConnection
from engine.server.app import Engine
from tests.conftest import EngineFactory, RoomFactory, ViewerFactory, eventually, token
from tests.test_api_catalog import JACKET


def entry_ticks(event: dict[str, Any]) -> bool:
    return event.get("type") == "tick" and "entries" in event


async def collect_comments(client: ViewerClient, count: int, timeout_s: float = 10) -> list[str]:
    """Texts of the next `count` comments the client receives in ticks."""
    texts: list[str] = []
    async with asyncio.timeout(timeout_s):
        while len(texts) < count:
            event = await client.next_event()
            if event.get("type") == "tick":
                texts += [e["text"] for e in event.get("entries", []) if e["kind"] == "comment"]
    return texts


async def raw_session(engine: Engine, room: str, hello: dict[str, Any] | None) -> Any:
    ws = await connect(f"{engine.ws_url}/{room}", compression=None)
    if hello is not None:
        await ws.send(orjson.dumps(hello).decode())
    return ws


async def joined_raw_sessions(engine: Engine, room: str, prefix: str, count: int) -> list[Any]:
    """`count` plain WebSockets signed in as users `<prefix>0`... and past their welcome."""
    sockets = []
    for n in range(count):
        hello = {"type": "hello", "token": token(room, user=f"{prefix}{n}")}
        ws = await raw_session(engine, room, hello)
        assert orjson.loads(await ws.recv())["type"] == "welcome"
        sockets.append(ws)
    return sockets


# ---- joining --------------------------------------------------------------------------------


async def test_welcome_carries_room_history_and_limits(
    room: str, viewer_factory: ViewerFactory
) -> None:
    poster = await viewer_factory(room, user="alice")
    for n in range(3):
        await poster.comment(f"before {n}")
    await collect_comments(poster, 3)  # delivered: now part of the history joiners get
    late = await viewer_factory(room)
    welcome = late.welcome
    assert welcome["room"]["id"] == room
    assert welcome["room"]["state"] == "live"
    assert [e["text"] for e in welcome["history"]] == ["before 0", "before 1", "before 2"]
    assert welcome["offset"] == welcome["history"][-1]["id"]
    assert welcome["limits"]["max_comment_chars"] == 200
    assert welcome["role"] == "viewer"


async def test_comment_reaches_json_and_msgpack_viewers(
    room: str, viewer_factory: ViewerFactory
) -> None:
    poster = await viewer_factory(room, user="bob")
    json_viewer = await viewer_factory(room, codec="json")
    msgpack_viewer = await viewer_factory(room, codec="msgpack")
    entry = await poster.comment("  hello \n world  ")
    assert entry["text"] == "hello world"
    assert entry["user"] == "bob"
    for client in (json_viewer, msgpack_viewer):
        assert await collect_comments(client, 1) == ["hello world"]
    assert msgpack_viewer.ws is not None
    assert msgpack_viewer.ws.subprotocol == "livecart.v1.msgpack"


async def test_anonymous_viewer_watches_but_cannot_comment(
    room: str, viewer_factory: ViewerFactory
) -> None:
    anonymous = await viewer_factory(room, role=None)
    assert anonymous.welcome["role"] == "anonymous"
    with pytest.raises(LivecartClientError) as refused:
        await anonymous.comment("hi")
    assert refused.value.code == "forbidden"
    assert await anonymous.ping() >= 0  # still connected


async def test_room_without_anonymous_refuses_tokenless_viewers(
    engine: Engine, room_factory: RoomFactory
) -> None:
    room = await room_factory(settings={"allow_anonymous": False})
    client = ViewerClient(engine.ws_url, room, None, reconnect=False)
    with pytest.raises(LivecartClientError) as refused:
        await client.connect()
    assert refused.value.code == "auth_required"
    assert client.close_code == 3500


@pytest.mark.parametrize(
    ("make_token", "code"),
    [
        (lambda room: token(room)[:-4] + "AAAA", "token_invalid"),
        (lambda room: "not-a-token", "token_invalid"),
        (lambda room: token(room, ttl_s=1, now=0), "token_expired"),
        (lambda room: token("some-other-room"), "token_wrong_room"),
    ],
)
async def test_bad_tokens_are_refused_with_distinct_codes(
    engine: Engine, room: str, make_token: Any, code: str
) -> None:
    client = ViewerClient(engine.ws_url, room, make_token(room), reconnect=False)
    with pytest.raises(LivecartClientError) as refused:
        await client.connect()
    assert refused.value.code == code
    assert client.close_code == 3500


async def test_unknown_room_closes_with_room_not_found(engine: Engine) -> None:
    client = ViewerClient(engine.ws_url, "no-such-room", None, reconnect=False)
    with pytest.raises(LivecartClientError) as refused:
        await client.connect()
    assert refused.value.code == "room_not_found"
    assert client.close_code == 3503


async def test_first_frame_must_be_hello(engine: Engine, room: str) -> None:
    ws = await raw_session(engine, room, {"type": "ping"})
    reply = orjson.loads(await ws.recv())
    assert reply["code"] == "hello_required"
    await ws.wait_closed()
    assert ws.close_code == 3502


async def test_no_hello_in_time_closes_3003(engine_factory: EngineFactory) -> None:
    engine = await engine_factory(limits=Limits(hello_timeout_s=0.2))
    async with HostClient(engine.base_url, "hello-timeout", token("hello-timeout", "host")) as h:
        await h.create_room("t")
    ws = await raw_session(engine, "hello-timeout", None)
    await ws.wait_closed()
    assert ws.close_code == 3003


# ---- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{not json", "bad_frame"),
        ("[1, 2]", "bad_frame"),
        ('{"type": "dance"}', "unknown_type"),
        ('{"type": "comment", "text": 42}', "invalid_field"),
        ('{"type": "like", "count": 0}', "invalid_field"),
        ('{"type": "like", "count": true}', "invalid_field"),
        ('{"type": "comment", "text": ""}', "comment_empty"),
        ('{"type": "comment", "text": "' + "x" * 201 + '"}', "comment_too_long"),
        ('{"type": "comment", "text": "' + "x" * 2001 + '"}', "too_large"),
        ('{"type": "hello"}', "already_joined"),
    ],
)
async def test_bad_frames_get_error_frames_and_the_connection_survives(
    room: str, viewer_factory: ViewerFactory, frame: str, code: str
) -> None:
    client = await viewer_factory(room)
    await client.send_raw(frame)
    error = await client.wait_for(lambda e: e.get("type") == "error")
    assert error["code"] == code
    assert error["retryable"] is False
    assert await client.ping() >= 0
    assert (await client.comment("still here"))["text"] == "still here"


async def test_error_frames_echo_the_request_id(room: str, viewer_factory: ViewerFactory) -> None:
    client = await viewer_factory(room)
    await client.send_raw('{"type": "like", "count": 1000, "id": "req-7"}')
    error = await client.wait_for(lambda e: e.get("type") == "error")
    assert error["ref"] == "req-7"
    assert error["details"] == {"field": "count"}


async def test_msgpack_connection_rejects_text_frames(
    room: str, viewer_factory: ViewerFactory
) -> None:
    client = await viewer_factory(room, codec="msgpack")
    await client.send_raw('{"type": "ping"}')
    error = await client.wait_for(lambda e: e.get("type") == "error")
    assert error["code"] == "bad_frame"
    await client.send_raw(msgpack.packb({"type": "ping", "id": "x"}))
    assert (await client.wait_for(lambda e: e.get("type") == "pong"))["ref"] == "x"


async def test_oversize_frame_closes_1009(room: str, viewer_factory: ViewerFactory) -> None:
    client = await viewer_factory(room, reconnect=False)
    await client.send_raw("x" * (Limits().max_frame_bytes + 1))
    closed = await client.wait_for(lambda e: e.get("type") == "closed")
    assert closed["code"] == 1009


async def test_error_budget_exceeded_closes_3502(room: str, viewer_factory: ViewerFactory) -> None:
    client = await viewer_factory(room, reconnect=False)
    before = METRICS.disconnects.value("protocol_abuse")
    for _ in range(Limits().max_errors + 1):
        await client.send_raw("garbage")
    closed = await client.wait_for(lambda e: e.get("type") == "closed")
    assert closed["code"] == 3502
    assert METRICS.disconnects.value("protocol_abuse") == before + 1


async def test_frame_flood_is_rate_limited(engine_factory: EngineFactory) -> None:
    engine = await engine_factory(limits=Limits(messages_per_second=1, message_burst=3))
    room = "flood-room"
    async with HostClient(engine.base_url, room, token(room, "host")) as h:
        await h.create_room("t")
    client = ViewerClient(engine.ws_url, room, token(room))
    await client.connect()
    try:
        for n in range(5):
            await client.send_raw(orjson.dumps({"type": "ping", "id": f"p{n}"}).decode())
        replies = [
            await client.wait_for(lambda e, ref=f"p{n}": e.get("ref") == ref) for n in range(5)
        ]
        assert [r["type"] for r in replies] == ["pong"] * 3 + ["error"] * 2
        assert replies[3]["code"] == "rate_limited"
        assert replies[3]["retryable"] is True
        assert replies[3]["details"]["retry_after_ms"] > 0
    finally:
        await client.close()


async def test_frames_that_decode_take_a_token_and_garbage_does_not(
    engine_factory: EngineFactory,
) -> None:
    engine = await engine_factory(limits=Limits(messages_per_second=0.01, message_burst=3))
    room = "token-room"
    async with HostClient(engine.base_url, room, token(room, "host")) as h:
        await h.create_room("t")
    client = ViewerClient(engine.ws_url, room, token(room))
    await client.connect()
    try:
        for _ in range(3):  # bad_frame: no token taken
            await client.send_raw('{"type": "ping", "id": "g"')
        for n in range(3):  # they decode, so each takes one of the 3 tokens
            await client.send_raw(orjson.dumps({"type": "like", "count": 0, "id": f"b{n}"}))
        await client.send_raw(orjson.dumps({"type": "ping", "id": "late"}).decode())
        errors = [await client.wait_for(lambda e: e.get("type") == "error") for _ in range(7)]
        assert [(e["code"], e.get("ref")) for e in errors] == [
            *[("bad_frame", None)] * 3,
            *[("invalid_field", f"b{n}") for n in range(3)],
            ("rate_limited", "late"),
        ]
    finally:
        await client.close()


# ---- fan-out ---------------------------------------------------------------------------------


async def test_likes_are_aggregated_into_the_room_total(
    room: str, viewer_factory: ViewerFactory
) -> None:
    viewers = [await viewer_factory(room) for _ in range(3)]
    for n, client in enumerate(viewers, start=1):
        await client.like(n, confirm=True)
    tick = await viewers[0].wait_for(lambda e: e.get("stats", {}).get("likes") == 6)
    assert tick["stats"]["online"] == 3
    assert tick["stats"]["unique"] == 3


async def test_ticks_are_numbered_without_gaps(room: str, viewer_factory: ViewerFactory) -> None:
    poster = await viewer_factory(room, role="host")
    watcher = await viewer_factory(room)
    for n in range(20):
        await poster.comment(f"c{n}")
    assert await collect_comments(watcher, 20) == [f"c{n}" for n in range(20)]
    assert watcher.gaps == 0
    assert watcher.duplicates == 0


async def test_sampling_keeps_host_comments_and_accounts_for_every_comment(
    engine: Engine, room_factory: RoomFactory, viewer_factory: ViewerFactory
) -> None:
    room = await room_factory(settings={"display_rate": 1, "comment_rate_max": 0})
    watcher = await viewer_factory(room)
    host = await viewer_factory(room, role="host")
    posters = [await viewer_factory(room) for _ in range(4)]
    posted = 0
    for n in range(10):
        await asyncio.gather(*(p.comment(f"viewer {n}") for p in posters))
        posted += len(posters)
    await host.comment("host speaks")
    await watcher.wait_for(
        lambda e: any(x.get("text") == "host speaks" for x in e.get("entries", []))
    )
    shown = [e for e in watcher.entries.values() if e["role"] == "viewer"]
    assert watcher.sampled_out > 0
    assert len(shown) + watcher.sampled_out == posted


async def test_own_comment_is_acknowledged_even_when_sampled_out(
    room_factory: RoomFactory, viewer_factory: ViewerFactory
) -> None:
    room = await room_factory(settings={"display_rate": 1, "comment_rate_max": 0})
    poster = await viewer_factory(room)
    acks = [await poster.comment(f"mine {n}") for n in range(6)]
    assert [a["text"] for a in acks] == [f"mine {n}" for n in range(6)]
    assert all(a["id"] for a in acks)


# ---- resume ------------------------------------------------------------------------------------


async def test_reconnect_resumes_from_offset_without_gap_or_duplicate(
    room: str, viewer_factory: ViewerFactory
) -> None:
    host = await viewer_factory(room, role="host")
    client = await viewer_factory(room)
    for n in range(5):
        await host.comment(f"a{n}")
    await collect_comments(client, 5)
    assert client.ws is not None
    client.ws.transport.abort()  # the network drops
    for n in range(5):
        await host.comment(f"b{n}")
    reconnected = await client.wait_for(lambda e: e.get("type") == "reconnected")
    assert reconnected["recovered"] is True
    for n in range(5):
        await host.comment(f"c{n}")
    # Wait for the last one itself: b-entries not in the replay arrive by tick too, so a
    # count of comments received could be reached before c4.
    await eventually(lambda: any(e.get("text") == "c4" for e in client.entries.values()))
    texts = [e["text"] for e in client.entries.values()]
    assert texts == [f"{p}{n}" for p in "abc" for n in range(5)]
    assert client.duplicates == 0
    assert client.gaps == 0
    assert client.reconnects == 1


async def test_resume_too_far_back_is_reported_unrecovered(
    engine_factory: EngineFactory, viewer_factory: ViewerFactory
) -> None:
    engine = await engine_factory(max_replay=3)
    room = "resume-far"
    async with HostClient(engine.base_url, room, token(room, "host")) as h:
        await h.create_room("t")
    host = await viewer_factory(room, role="host", target=engine)
    first = await host.comment("first")
    for n in range(5):
        await host.comment(f"more {n}")
    await collect_comments(host, 6)  # all delivered, so all would be in a replay
    ws = await raw_session(engine, room, {"type": "hello", "since": first["id"]})
    welcome = orjson.loads(await ws.recv())
    assert welcome["recovered"] is False
    assert [e["text"] for e in welcome["history"]][-1] == "more 4"
    await ws.close()


# ---- moderation as viewers see it --------------------------------------------------------------


async def test_deleted_comment_disappears_for_watchers_and_joiners(
    room: str, host: HostClient, viewer_factory: ViewerFactory
) -> None:
    poster = await viewer_factory(room, user="spammer")
    watcher = await viewer_factory(room)
    entry = await poster.comment("buy followers at example.com")
    await collect_comments(watcher, 1)
    await host.delete_comment(entry["id"])
    deleted = await watcher.wait_for(
        lambda e: any(x["kind"] == "comment_deleted" for x in e.get("entries", []))
    )
    assert deleted["entries"][-1]["ref"] == entry["id"]
    assert entry["id"] not in watcher.entries
    joiner = await viewer_factory(room)
    assert entry["id"] not in [e["id"] for e in joiner.welcome["history"]]


async def test_pinned_comment_reaches_watchers_and_is_in_welcome(
    room: str, host: HostClient, viewer_factory: ViewerFactory
) -> None:
    poster = await viewer_factory(room)
    watcher = await viewer_factory(room)
    entry = await poster.comment("what sizes are there?")
    await host.pin(entry["id"])
    pinned = await watcher.wait_for(
        lambda e: any(x["kind"] == "comment_pinned" for x in e.get("entries", []))
    )
    assert pinned["entries"][-1]["text"] == "what sizes are there?"
    joiner = await viewer_factory(room)
    assert joiner.welcome["room"]["pinned"]["id"] == entry["id"]


async def test_muted_viewer_is_told_and_refused(
    room: str, host: HostClient, viewer_factory: ViewerFactory
) -> None:
    loud = await viewer_factory(room, user="loud")
    until = await host.mute("loud", minutes=5)
    notice = await loud.wait_for(lambda e: e.get("type") == "notice")
    assert notice == {"type": "notice", "kind": "muted", "user": "loud", "until": until}
    with pytest.raises(LivecartClientError) as refused:
        await loud.comment("let me talk")
    assert refused.value.code == "muted"
    assert refused.value.details["retry_after_ms"] > 0
    await host.unmute("loud")
    assert (await loud.comment("thanks")) is not None


async def test_banned_viewer_is_disconnected_and_cannot_rejoin(
    engine: Engine, room: str, host: HostClient, viewer_factory: ViewerFactory
) -> None:
    troll = await viewer_factory(room, user="troll")
    await host.ban("troll")
    error = await troll.wait_for(lambda e: e.get("type") == "error")
    assert error["code"] == "banned"
    closed = await troll.wait_for(lambda e: e.get("type") == "closed")
    assert closed["code"] == 3501
    again = ViewerClient(engine.ws_url, room, token(room, user="troll"), reconnect=False)
    with pytest.raises(LivecartClientError) as refused:
        await again.connect()
    assert refused.value.code == "banned"
    assert again.close_code == 3501


async def test_banned_words_block_viewers_but_not_hosts(
    room: str, host: HostClient, viewer_factory: ViewerFactory
) -> None:
    viewer = await viewer_factory(room)
    seat = await viewer_factory(room, role="host")
    await host.set_banned_words(["scam"])
    refusal: LivecartClientError | None = None
    async with asyncio.timeout(5):
        while refusal is None:  # the word list reaches the hub through the bus
            try:
                await viewer.comment("this is a S C A M")
            except LivecartClientError as refused:
                refusal = refused
            await asyncio.sleep(0.05)
    assert refusal.code == "comment_blocked"
    assert (await seat.comment("beware of scam links"))["text"] == "beware of scam links"


async def test_slow_mode_spaces_out_viewer_comments(
    room: str, host: HostClient, viewer_factory: ViewerFactory
) -> None:
    viewer = await viewer_factory(room)
    await host.slow_mode(30)
    await viewer.comment("first")
    with pytest.raises(LivecartClientError) as refused:
        await viewer.comment("second")
    assert refused.value.code == "slow_mode"
    assert refused.value.retryable is True
    assert 0 < refused.value.details["retry_after_ms"] <= 30_000


async def test_room_state_changes_reach_viewers_and_end_closes_comments(
    engine: Engine, room_factory: RoomFactory, viewer_factory: ViewerFactory
) -> None:
    room = await room_factory(live=False)
    viewer = await viewer_factory(room)
    assert viewer.welcome["room"]["state"] == "scheduled"
    assert (await viewer.comment("waiting for the show")) is not None
    async with HostClient(engine.base_url, room, token(room, "host", "host-1")) as h:
        await h.go_live()
        live = await viewer.wait_for(
            lambda e: any(x["kind"] == "room_state" for x in e.get("entries", []))
        )
        assert live["entries"][-1]["state"] == "live"
        await h.end()
    ended = await viewer.wait_for(
        lambda e: any(x.get("state") == "ended" for x in e.get("entries", []))
    )
    assert ended["entries"][-1]["previous"] == "live"
    with pytest.raises(LivecartClientError) as refused:
        await viewer.comment("bye")
    assert refused.value.code == "room_not_open"


# ---- slow consumers and shutdown ----------------------------------------------------------


async def test_slow_consumer_is_dropped_with_a_retryable_code(
    engine_factory: EngineFactory,
) -> None:
    engine = await engine_factory(
        limits=Limits(write_buffer_bytes=8 * 1024, messages_per_second=1e6, message_burst=10**6)
    )
    room = "slow-room"
    async with HostClient(engine.base_url, room, token(room, "host")) as h:
        await h.create_room("t", settings={"max_comment_chars": 2000})
    host = ViewerClient(engine.ws_url, room, token(room, "host"))
    await host.connect()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", engine.port))
    stalled = await connect(f"{engine.ws_url}/{room}", sock=sock, max_queue=1, compression=None)
    await stalled.send(orjson.dumps({"type": "hello", "token": token(room)}).decode())
    before = METRICS.disconnects.value("slow_consumer")
    try:
        # The stalled client never reads; the room keeps talking.
        async with asyncio.timeout(30):
            n = 0
            while METRICS.disconnects.value("slow_consumer") == before:
                await host.comment(f"{n} " + "x" * 1900)
                n += 1
        # Drain: the close frame is queued behind the data the client never read.
        with contextlib.suppress(ConnectionClosed):
            async with asyncio.timeout(10):
                async for _ in stalled:
                    pass
        assert stalled.close_code == 3001
    finally:
        await host.close()
        stalled.transport.abort()


async def test_shutdown_sends_going_away(engine_factory: EngineFactory) -> None:
    engine = await engine_factory()
    room = "shutdown-room"
    async with HostClient(engine.base_url, room, token(room, "host")) as h:
        await h.create_room("t")
    client = ViewerClient(engine.ws_url, room, token(room), reconnect=False)
    await client.connect()
    await engine.stop()
    closed = await client.wait_for(lambda e: e.get("type") == "closed")
    assert closed["code"] == 1001


async def test_an_open_socket_ends_when_its_token_expires(engine: Engine, room: str) -> None:
    # `iat` has whole seconds: minted at the next one, the token lives at least 2 s from
    # now, so a loaded machine still opens the socket before it expires.
    brief = token(room, user="brief", ttl_s=2, now=math.ceil(time.time()))
    viewer = ViewerClient(engine.ws_url, room, brief)
    await viewer.connect()
    try:
        event = await viewer.next_event(timeout_s=10)
        while event.get("type") != "closed":
            event = await viewer.next_event(timeout_s=10)
        # 3500: sign in again (no automatic reconnect with the expired token).
        assert event["code"] == CloseCode.AUTH_FAILED
    finally:
        await viewer.close()


async def test_a_burst_of_grabs_is_answered_in_arrival_order(
    engine: Engine, host: HostClient, room: str
) -> None:
    """docs/protocol.md: grabs reaching one process for a sale are handled in arrival order.
    20 viewers, each on a sale of its own (20 batchers racing at once), send five grab
    frames back to back; with a limit of one, each viewer's first frame is the one
    reserved, and the fifth, repeating the first's request id, is the replay: never the
    other way round."""
    await host.create_product(**JACKET)
    sales = [(await host.launch_sale("DJ-M", 2, per_user_limit=1))["id"] for _ in range(20)]
    sockets = await joined_raw_sessions(engine, room, "t", 20)

    async def burst(ws: Any, sale: str) -> list[tuple[str, bool]]:
        ids = ["g1", "g2", "g3", "g4", "g1"]
        frames = [orjson.dumps({"type": "grab", "sale": sale, "id": rid}).decode() for rid in ids]
        await asyncio.gather(*(ws.send(frame) for frame in frames))  # one write burst
        acks: list[dict[str, Any]] = []
        while len(acks) < len(ids):
            frame = orjson.loads(await ws.recv())
            if frame["type"] in {"ack", "error"}:
                acks.append(frame)
        return [(ack["ref"], ack.get("replayed", False), ack["result"]["status"])
                for ack in acks]  # fmt: skip

    try:
        async with asyncio.timeout(30):
            answers = await asyncio.gather(*map(burst, sockets, sales))
    finally:
        for ws in sockets:
            await ws.close()
    for acks in answers:
        # Answers come back in the order the frames were sent.
        assert acks == [("g1", False, "reserved"), ("g2", False, "limit_reached"),
                        ("g3", False, "limit_reached"), ("g4", False, "limit_reached"),
                        ("g1", True, "reserved")], acks  # fmt: skip
    for sale in sales:
        assert (await host.sale(sale))["reserved"] == 1


async def test_frames_after_one_that_waits_are_answered_after_it(engine: Engine, room: str) -> None:
    """A comment waits for storage; a ping and a like sent right behind it are answered
    after its ack, never before (frames of one connection are served in the order they
    came, whichever way each is served: engine/realtime/gateway.py)."""
    [ws] = await joined_raw_sessions(engine, room, "o", 1)
    try:
        for frame in ({"type": "comment", "text": "first", "id": "c1"},
                      {"type": "ping", "id": "p1"}, {"type": "like", "count": 1, "id": "l1"},
                      {"type": "comment", "text": "second", "id": "c2"},
                      {"type": "ping", "id": "p2"}):  # fmt: skip
            await ws.send(orjson.dumps(frame).decode())
        answers: list[tuple[str, str]] = []
        async with asyncio.timeout(10):
            while len(answers) < 5:
                frame = orjson.loads(await ws.recv())
                if frame["type"] in {"ack", "pong", "error"}:
                    answers.append((frame["type"], frame["ref"]))
        assert answers == [("ack", "c1"), ("pong", "p1"), ("ack", "l1"), ("ack", "c2"),
                           ("pong", "p2")]  # fmt: skip
    finally:
        await ws.close()


async def test_an_idle_connection_serves_a_tap_as_soon_as_it_is_read(
    engine: Engine, room: str
) -> None:
    """A ping, a like or a grab reaching a connection with nothing in hand is served in the
    read's own turn of the loop (engine/realtime/viewer_connection.py); a comment, which
    waits for storage, is handed to the connection's read loop, once."""
    [ws] = await joined_raw_sessions(engine, room, "idle", 1)
    assert engine.listener is not None
    [conn] = [c for c in engine.listener.ws_server.all_connections
              if isinstance(c, ViewerConnection) and c.viewer is not None]  # fmt: skip
    served = conn.serve_at_once
    assert served is not None
    taken: list[bool] = []

    def spy(frame: str | bytes) -> bool:
        taken.append(served(frame))
        return taken[-1]

    conn.serve_at_once = spy
    try:
        for frame, answer in (({"type": "ping", "id": "p"}, "pong"),
                              ({"type": "like", "count": 2, "id": "l"}, "ack"),
                              ({"type": "grab", "sale": "s404", "id": "g"}, "error"),
                              ({"type": "comment", "text": "hi", "id": "c"}, "ack")):  # fmt: skip
            await ws.send(orjson.dumps(frame).decode())
            async with asyncio.timeout(10):
                while (got := orjson.loads(await ws.recv()))["type"] != answer:
                    pass
            assert got["ref"] == frame["id"]
            if answer == "error":
                assert got["code"] == "sale_not_found"
        assert taken == [True, True, True, False]
    finally:
        await ws.close()


async def flood(ws: Any, frames: list[str]) -> tuple[list[dict[str, Any]], int | None]:
    """Send every frame as one burst (stopping if the engine closes), then read until the
    close: the frames answered, and the close code."""
    with contextlib.suppress(ConnectionClosed):
        for frame in frames:
            await ws.send(frame)
    answers: list[dict[str, Any]] = []
    with contextlib.suppress(ConnectionClosed):
        async with asyncio.timeout(30):
            while True:
                answers.append(orjson.loads(await ws.recv()))
    return answers, ws.close_code


async def test_a_flood_over_the_error_budget_is_cut_off_where_the_budget_ends(
    engine: Engine, room: str, host: HostClient
) -> None:
    """Five connections at once each send 35 unknown frames then 4 valid comments in one
    burst: each gets exactly 31 error frames and the close 3502, none of the 4 comments is
    stored or shown, and each connection counts once as protocol abuse."""
    limits = engine.settings.limits
    before = METRICS.disconnects.value("protocol_abuse")
    burst = [orjson.dumps({"type": "nope", "id": f"x{n}"}).decode() for n in range(35)]
    burst += [orjson.dumps({"type": "comment", "text": f"after {n}", "id": f"c{n}"}).decode()
              for n in range(4)]  # fmt: skip
    sockets = await joined_raw_sessions(engine, room, "f", 5)
    results = await asyncio.gather(*(flood(ws, burst) for ws in sockets))
    for answers, code in results:
        errors = [a for a in answers if a["type"] == "error"]
        assert len(errors) == limits.max_errors + 1
        assert [a for a in answers if a["type"] == "ack"] == []
        assert code == CloseCode.PROTOCOL_ABUSE
    assert METRICS.disconnects.value("protocol_abuse") == before + 5
    history = await host.call("GET", f"/api/rooms/{room}/comments")
    assert not [e for e in history["entries"] if e.get("text", "").startswith("after ")]


async def test_a_rate_flood_gets_its_error_budget_not_thousands_of_answers(
    engine: Engine, room: str
) -> None:
    """10,000 pings as fast as the socket takes them, from three connections at once: each
    is answered its burst of pongs, then `rate_limited` until the budget is spent (31
    errors), and closed; the rest is never read."""
    limits = engine.settings.limits
    pings = [orjson.dumps({"type": "ping", "id": str(n)}).decode() for n in range(10_000)]
    sockets = await joined_raw_sessions(engine, room, "p", 3)
    results = await asyncio.gather(*(flood(ws, pings) for ws in sockets))
    for answers, code in results:
        limited = [a for a in answers if a.get("code") == "rate_limited"]
        pongs = [a for a in answers if a["type"] == "pong"]
        assert len(limited) == limits.max_errors + 1
        assert len(pongs) < limits.message_burst + 2 * limits.messages_per_second
        assert code == CloseCode.PROTOCOL_ABUSE


def here(engine: Engine, room: str) -> int:
    """Viewers this engine process counts in the room (its hub's broadcast set)."""
    assert engine.node is not None
    hub = engine.node.hubs.get(room)
    return 0 if hub is None else hub.online_here


ODD_VALUES = ["h1.é", "é" * 200, "x" * 5000, "\x00", "v1.\u202e", "", " ", "s1.1", 12, None,
              [], {}, True, -1, 1e308]  # fmt: skip


@pytest.mark.parametrize("field", ["token", "since", "ref", "device", "id"])
async def test_no_hello_field_can_leave_a_ghost_viewer(engine: Engine, room: str,
                                                       field: str) -> None:  # fmt: skip
    """Every odd value of every `hello` field, from anonymous viewers: each connection is
    answered (a welcome, or an error and a close), and once they are all gone the room
    counts no one (a join that failed half way used to stay counted for good)."""
    for value in ODD_VALUES:
        ws = await raw_session(engine, room, {"type": "hello", field: value})
        with contextlib.suppress(ConnectionClosed):
            async with asyncio.timeout(10):
                reply = orjson.loads(await ws.recv())
                assert reply["type"] in {"welcome", "error"}, reply
        await ws.close()
    await eventually(lambda: here(engine, room) == 0)


async def test_a_failure_after_the_join_still_leaves_the_room(
    engine: Engine, room: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Any exception between the join and the read loop (here: the share-link credit
    failing) closes the connection and takes the viewer out of the room again."""
    assert engine.node is not None

    async def broken(*_: Any) -> None:
        raise RuntimeError("a fault injected after the join")

    monkeypatch.setattr(engine.node.referrals, "on_join", broken)
    sockets = [await raw_session(engine, room, {"type": "hello", "ref": f"h{n}.x"})
               for n in range(20)]  # fmt: skip
    for ws in sockets:
        with contextlib.suppress(ConnectionClosed):
            async with asyncio.timeout(10):
                while True:
                    await ws.recv()
    assert all(ws.close_code == 1011 for ws in sockets)
    await eventually(lambda: here(engine, room) == 0)


async def test_clicks_count_only_the_rooms_products(engine: Engine, room: str) -> None:
    """A `click` names a product of the room or is refused `product_not_found`: invented ids
    leave no field in the room's metrics hash (each used to become a permanent one), and the
    connection's clicked set holds the room's products only."""
    assert engine.node is not None
    async with HostClient(engine.base_url, room, token(room, "host")) as host:
        await host.create_product(**JACKET)  # p1
    ws = await raw_session(engine, room, {"type": "hello", "token": token(room, user="kim")})
    assert orjson.loads(await ws.recv())["type"] == "welcome"
    answers: dict[str, dict[str, Any]] = {}
    for n, product in enumerate(["p1", "p1", *(f"p{900 + k}" for k in range(30))]):
        await ws.send(orjson.dumps({"type": "click", "product": product, "id": f"k{n}"}))
    async with asyncio.timeout(10):
        while len(answers) < 32:
            message = orjson.loads(await ws.recv())
            if message["type"] in {"ack", "error"}:
                answers[message["ref"]] = message
    assert [answers[f"k{n}"]["type"] for n in range(2)] == ["ack", "ack"]
    refused = [answers[f"k{n}"] for n in range(2, 32)]
    assert {(m["type"], m["code"]) for m in refused} == {("error", "product_not_found")}
    await engine.node.meter.flush()
    fields = [f.decode() for f in await engine.node.redis.hkeys(f"lc:{{{room}}}:metrics")]
    assert sorted(f for f in fields if f.startswith("t:clicks")) == ["t:clicks", "t:clicks.p1"]
    assert len(fields) < 20, fields  # no field per invented id
    viewer = next(iter(engine.node.hubs[room].viewers))
    assert viewer.clicked == {"p1"}
    await ws.close()
