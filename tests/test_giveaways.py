"""engine.features.giveaways.store: the draw (deterministic, recomputable from the revealed
seed), entry
rules (any, keyword over HTTP and by comment, watch time), limits recorded at the draw,
prizes (product units and coupons) awarded once even when re-run, winners' notices,
closing exactly once, the seed hidden until the draw, opened/closed entries reaching
viewers, `livecart giveaway verify`, and the audit of draws and prizes."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgspec
import orjson
import pytest
from redis import asyncio as aioredis

from clients import HostClient, ShopperClient, ViewerClient
from clients.errors import LivecartClientError
from engine.cli import main as cli_main
from engine.core.errors import ConflictError, RejectedError
from engine.core.identity import Author, Role
from engine.features.giveaways.draw import commitment, draw, excluded_entrants, verify
from engine.features.giveaways.model import EntryRule, GiveawayTerms, PrizeKind
from engine.insights.audit import audit_room
from engine.server.app import Engine
from engine.store import keys
from tests.conftest import ADDRESS, EngineFactory, ViewerFactory, poll, token
from tests.test_api_catalog import JACKET, failed, host_token, next_entry, ok


@pytest.fixture
async def http(engine: Engine) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=engine.base_url, timeout=10) as client:
        yield client


def auth(room: str, role: str = "viewer", user: str | None = None) -> dict[str, str]:
    tok = host_token(room) if role == "host" else token(room, role, user)
    return {"authorization": f"Bearer {tok}"}


async def open_giveaway(http: httpx.AsyncClient, room: str, **terms: Any) -> dict[str, Any]:
    body = {"title": "Lucky bag", "prize": "a tote bag", "winners": 2, "duration_s": 60, **terms}
    result: dict[str, Any] = ok(
        await http.post(f"/api/rooms/{room}/giveaways", json=body, headers=auth(room, "host")),
        201,
    )
    return result


async def enter(http: httpx.AsyncClient, room: str, gid: str, user: str,
                **body: Any) -> httpx.Response:  # fmt: skip
    return await http.post(
        f"/api/rooms/{room}/giveaways/{gid}/enter", json=body, headers=auth(room, "viewer", user)
    )


async def close(http: httpx.AsyncClient, room: str, gid: str) -> httpx.Response:
    return await http.post(f"/api/rooms/{room}/giveaways/{gid}/close", headers=auth(room, "host"))


async def main(argv: list[str]) -> int:
    """The CLI in a thread (it runs its own event loop)."""
    return await asyncio.to_thread(cli_main, argv)


# ---- the draw, pure ---------------------------------------------------------------------


def test_draw_matches_a_hand_computation() -> None:
    seed = bytes(range(32))
    entrants = ["carol", "alice", "bob", "dave"]
    keyed = {e: hashlib.sha256(seed + b"\x00" + e.encode()).hexdigest() for e in entrants}
    by_key = sorted(entrants, key=lambda e: keyed[e])
    assert draw(seed, entrants, 2) == by_key[:2]
    assert draw(seed, sorted(entrants), 2) == draw(seed, entrants, 2)  # order-independent
    assert draw(seed, [*entrants, "alice"], 4) == by_key  # duplicates count once
    assert draw(seed, entrants, 10) == by_key  # fewer entrants than winners
    assert draw(seed, [], 3) == []


def test_verify_offline() -> None:
    seed = bytes.fromhex("11" * 32)
    entrants = sorted(f"u{i}" for i in range(50))
    winners = draw(seed, entrants, 5)
    assert verify(seed.hex(), commitment(seed), entrants, 5, winners)
    assert not verify(seed.hex(), commitment(b"other"), entrants, 5, winners)
    assert not verify(seed.hex(), commitment(seed), entrants, 5, [*winners[:4], "u49x"])
    assert not verify("not hex", commitment(seed), entrants, 5, winners)


# ---- over HTTP ----------------------------------------------------------------------------


async def test_seed_hidden_until_the_draw_then_verifiable(
    http: httpx.AsyncClient, room: str, viewer_factory: ViewerFactory
) -> None:
    viewer = await viewer_factory(room)
    g = await open_giveaway(http, room, winners=3)
    gid = g["id"]
    assert g["state"] == "open"
    assert g["seed"] is None
    assert g["winners"] is None
    assert len(g["commitment"]) == 64
    _, opened = await next_entry(viewer, "giveaway_opened", gid)
    assert opened["commitment"] == g["commitment"]
    assert "seed" not in opened
    assert opened["winners"] == 3
    assert opened["prize"] == "a tote bag"

    users = [f"fan-{i}" for i in range(7)]
    for user in users:
        assert ok(await enter(http, room, gid, user))["new"] is True
    again = ok(await enter(http, room, gid, users[0]))
    assert again == {"giveaway": gid, "entered": True, "new": False, "entrants": 7}
    listed = ok(await http.get(f"/api/rooms/{room}/giveaways"))["giveaways"]
    assert [x["id"] for x in listed] == [gid]
    assert listed[0]["seed"] is None
    assert listed[0]["entrants_count"] == 7

    closed = ok(await close(http, room, gid))
    assert closed["state"] == "closed"
    assert len(closed["winners"]) == 3
    seed = bytes.fromhex(closed["seed"])
    assert commitment(seed) == g["commitment"]
    assert closed["winners"] == draw(seed, sorted(users), 3)
    _, entry = await next_entry(viewer, "giveaway_closed", gid)
    assert entry["seed"] == closed["seed"]
    assert entry["winners"] == closed["winners"]
    assert entry["entrants"] == 7
    assert entry["commitment"] == g["commitment"]
    # closing again changes nothing
    assert ok(await close(http, room, gid)) == closed
    failed(await enter(http, room, gid, "late-fan"), 409, "giveaway_closed")


async def test_keyword_rule(http: httpx.AsyncClient, room: str) -> None:
    g = await open_giveaway(http, room, rule="keyword", keyword="好运 Bag")
    gid = g["id"]
    # public, as `giveaway_opened` announces it: a viewer page needs it after a reload
    assert ok(await http.get(f"/api/rooms/{room}/giveaways/{gid}"))["keyword"] == "好运 Bag"
    assert (await open_giveaway(http, room))["keyword"] is None
    failed(await enter(http, room, gid, "a"), 422, "keyword_mismatch")
    failed(await enter(http, room, gid, "a", keyword="bad luck"), 422, "keyword_mismatch")
    assert ok(await enter(http, room, gid, "a", keyword="好运bag"))["new"] is True
    failed(
        await http.post(f"/api/rooms/{room}/giveaways",
                        json={"title": "t", "prize": "p", "winners": 1, "rule": "keyword"},
                        headers=auth(room, "host")),
        400, "invalid_field",
    )  # fmt: skip


async def test_roles_and_errors(http: httpx.AsyncClient, room: str) -> None:
    body = {"title": "t", "prize": "p", "winners": 1}
    failed(await http.post(f"/api/rooms/{room}/giveaways", json=body,
                           headers=auth(room, "viewer")), 403, "forbidden")  # fmt: skip
    failed(await http.post(f"/api/rooms/{room}/giveaways", json={**body, "winners": 1001},
                           headers=auth(room, "host")), 400, "invalid_field")  # fmt: skip
    failed(await http.get(f"/api/rooms/{room}/giveaways/g999"), 404, "giveaway_not_found")
    g = await open_giveaway(http, room)
    failed(await http.post(f"/api/rooms/{room}/giveaways/{g['id']}/enter"), 401, "auth_required")
    r = await http.post(f"/api/rooms/{room}/giveaways/{g['id']}/close", headers=auth(room))
    failed(r, 403, "forbidden")


async def test_closes_on_read_after_its_end(engine: Engine, room: str) -> None:
    store = engine.node.service("giveaways")
    t0 = 1_900_000_000_000
    g = await store.create(room, GiveawayTerms(title="t", prize="p", winners=1, duration_s=10),
                           at_ms=t0)  # fmt: skip
    await store.enter(room, g.id, "ann", at_ms=t0 + 1000)
    with pytest.raises(ConflictError) as late:
        await store.enter(room, g.id, "bob", at_ms=t0 + 10_000)
    assert late.value.code == "giveaway_closed"
    assert (await store.get(room, g.id, at_ms=t0 + 5000)).state.value == "open"
    drawn = await store.get(room, g.id, at_ms=t0 + 10_000)
    assert drawn.state.value == "closed"
    assert drawn.winners == ("ann",)


async def test_concurrent_closes_draw_once(
    engine_factory: Any, engine: Engine, room: str, redis: aioredis.Redis
) -> None:
    other = await engine_factory()
    g = await engine.node.service("giveaways").create(
        room, GiveawayTerms(title="t", prize="p", winners=2)
    )
    for i in range(20):
        await engine.node.service("giveaways").enter(room, g.id, f"u{i}")
    stores = [engine.node.service("giveaways"), other.node.service("giveaways")] * 4
    results = await asyncio.gather(*(s.close(room, g.id) for s in stores))
    assert len({(r.seed, r.winners, r.closed_at) for r in results}) == 1
    log = await redis.xrange(keys.room_stream(room))
    assert [f[b"r"] for _, f in log if f[b"k"] == b"giveaway_closed"] == [g.id.encode()]


async def test_verify_cli(
    http: httpx.AsyncClient, room: str, redis: aioredis.Redis, redis_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    g = await open_giveaway(http, room, winners=2)
    gid = g["id"]
    # an open giveaway cannot be verified yet
    assert await main(["giveaway", "verify", room, gid, "--redis-url", redis_url, "--json"]) == 1
    capsys.readouterr()
    for user in ("ann", "bob", "cy", "dee"):
        ok(await enter(http, room, gid, user))
    closed = ok(await close(http, room, gid))
    assert await main(["giveaway", "verify", room, gid, "--redis-url", redis_url, "--json"]) == 0
    report = orjson.loads(capsys.readouterr().out)
    assert report == {
        "room": room, "giveaway": gid, "ok": True, "state": "closed", "commitment_ok": True,
        "winners_ok": True, "commitment": g["commitment"], "seed": closed["seed"],
        "entrants": ["ann", "bob", "cy", "dee"], "excluded": [], "winners": closed["winners"],
    }  # fmt: skip
    assert await main(["giveaway", "verify", room, gid, "--redis-url", redis_url]) == 0
    assert "VERIFIED" in capsys.readouterr().out

    # tamper with a stored winner: the draw no longer checks out
    loser = next(u for u in report["entrants"] if u not in report["winners"])
    await redis.hset(keys.giveaway(room, gid), "winners_list",
                     orjson.dumps([loser, report["winners"][1]]))  # fmt: skip
    assert await main(["giveaway", "verify", room, gid, "--redis-url", redis_url, "--json"]) == 1
    bad = orjson.loads(capsys.readouterr().out)
    assert bad["ok"] is False
    assert bad["commitment_ok"] is True
    assert bad["winners_ok"] is False
    # tamper with the entrants (winners restored): a loser dropped, or the list unsorted
    await redis.hset(keys.giveaway(room, gid), "winners_list", orjson.dumps(report["winners"]))
    assert await main(["giveaway", "verify", room, gid, "--redis-url", redis_url]) == 0
    capsys.readouterr()
    for entrants in ([u for u in report["entrants"] if u != loser], report["entrants"][::-1]):
        await redis.hset(keys.giveaway(room, gid), "entrants", orjson.dumps(entrants))
        assert await main(["giveaway", "verify", room, gid, "--redis-url", redis_url,
                           "--json"]) == 1  # fmt: skip
        assert orjson.loads(capsys.readouterr().out)["winners_ok"] is False
    await redis.hset(keys.giveaway(room, gid), "entrants", orjson.dumps(report["entrants"]))
    # tamper with the seed: the commitment no longer matches
    await redis.hset(keys.giveaway(room, gid), "seed", "00" * 32)
    assert await main(["giveaway", "verify", room, gid, "--redis-url", redis_url, "--json"]) == 1
    assert orjson.loads(capsys.readouterr().out)["commitment_ok"] is False


# ---- limits, pure -------------------------------------------------------------------------


def test_excluded_entrants_and_verify_with_exclusions() -> None:
    won = {"ann": ["g1"], "bob": ["g2", "g4"]}
    entrants = ["dee", "cy", "bob", "ann"]
    assert excluded_entrants(entrants, won, [], one_win=False) == []
    assert excluded_entrants(entrants, won, [], one_win=True) == ["ann", "bob"]
    assert excluded_entrants(entrants, won, ["g3", "g4"], one_win=False) == ["bob"]
    assert excluded_entrants(entrants, won, ["g1"], one_win=True) == ["ann", "bob"]
    seed = bytes.fromhex("22" * 32)
    ordered = sorted(entrants)
    winners = draw(seed, ["cy", "dee"], 2)
    assert verify(seed.hex(), commitment(seed), ordered, 2, winners, excluded=["ann", "bob"])
    # the same winners do not check out without the recorded exclusions, nor with others
    assert not verify(seed.hex(), commitment(seed), ordered, 2, winners)
    assert not verify(seed.hex(), commitment(seed), ordered, 2, winners, excluded=["ann"])
    assert not verify(seed.hex(), commitment(seed), ordered, 2, winners, excluded=["zed"])


# ---- entry rules ----------------------------------------------------------------------------


async def arrivals(viewer: ViewerClient, *kinds: str) -> dict[str, dict[str, Any]]:
    """Read the viewer's frames until a notice or a room-log entry of each of `kinds` has
    arrived (in any order); the first of each."""
    found: dict[str, dict[str, Any]] = {}
    async with asyncio.timeout(10):
        while set(kinds) - set(found):
            event = await viewer.next_event()
            items = [event] if event.get("type") == "notice" else event.get("entries", [])
            for item in items:
                if item.get("kind") in kinds:
                    found.setdefault(item["kind"], item)
    return found


async def notice(viewer: ViewerClient, kind: str) -> dict[str, Any]:
    """The viewer's next private notice of `kind`."""
    return (await arrivals(viewer, kind))[kind]


async def test_keyword_entry_by_comment(
    http: httpx.AsyncClient, room: str, redis: aioredis.Redis, viewer_factory: ViewerFactory
) -> None:
    g = await open_giveaway(http, room, rule="keyword", keyword="好运 Bag", winners=3)
    gid = g["id"]
    ann = await viewer_factory(room, user="ann")
    bob = await viewer_factory(room, user="bob")
    host = await viewer_factory(room, "host", user="host-1")
    await host.comment("comment 好运bag to enter!")  # the host announcing it does not enter
    await bob.comment("hello, good luck everyone")
    await ann.comment("我要 好运 BAG!!")  # contains it, as normalized
    entered = await notice(ann, "giveaway_entered")
    assert entered["giveaway"] == gid
    assert entered["entrants"] == 1
    await ann.comment("好运bag again")  # entered once
    await bob.comment("好运 \uff22\uff21\uff27 please")  # full-width letters normalize too
    assert (await notice(bob, "giveaway_entered"))["entrants"] == 2
    assert ok(await http.get(f"/api/rooms/{room}/giveaways/{gid}"))["entrants_count"] == 2

    closed = ok(await close(http, room, gid))
    assert sorted(closed["winners"]) == ["ann", "bob"]
    assert set(closed["winner_names"]) == {"ann", "bob"}
    seen = await arrivals(ann, "giveaway_closed", "giveaway_won")
    entry, won = seen["giveaway_closed"], seen["giveaway_won"]
    assert entry["names"] == closed["winner_names"]
    assert entry["excluded"] == 0
    # closed: its keyword is no longer matched against comments
    assert not await redis.hexists(keys.giveaway_keywords(room), gid)
    assert won["giveaway"] == gid
    assert won["prize"] == "a tote bag"
    assert won["prize_kind"] == "label"


async def test_a_keyword_opened_on_another_process_is_matched_at_once(
    engine: Engine, engine_factory: EngineFactory, room: str
) -> None:
    """Each process keeps a room's open keywords (GiveawayStore.keywords). One that has just
    read them (none open) still enters a viewer who comments the keyword as soon as the
    `giveaway_opened` entry reaches them, though the giveaway opened on another process."""
    other = await engine_factory()
    ann = ViewerClient(other.ws_url, room, token(room, user="ann"))
    await ann.connect()
    try:
        await ann.comment("lucky?")  # nothing open yet: `other` keeps that for a while
        store = engine.node.service("giveaways")
        terms = GiveawayTerms(title="t", prize="p", winners=1, rule=EntryRule.KEYWORD,
                              keyword="lucky")  # fmt: skip
        g = await store.create(room, terms)
        assert (await arrivals(ann, "giveaway_opened"))["giveaway_opened"]["ref"] == g.id
        await ann.comment("lucky me")
        assert (await notice(ann, "giveaway_entered"))["giveaway"] == g.id
        await store.close(room, g.id)
        await arrivals(ann, "giveaway_closed")
        assert await other.node.service("giveaways").keywords.get(room) == {}
    finally:
        await ann.close()


async def test_comment_entry_checks_the_limits_and_says_why(
    engine: Engine, room: str, viewer_factory: ViewerFactory
) -> None:
    store = engine.node.service("giveaways")
    first = await store.create(room, GiveawayTerms(title="t", prize="p", winners=1))
    await store.enter(room, first.id, "ann")
    await store.close(room, first.id)
    g = await store.create(room, GiveawayTerms(title="t", prize="p", winners=1,
                                               rule=EntryRule.KEYWORD, keyword="lucky",
                                               one_win_per_show=True))  # fmt: skip
    ann = await viewer_factory(room, user="ann")
    await ann.comment("LUCKY me")
    refused = await notice(ann, "giveaway_entry_refused")
    assert (refused["giveaway"], refused["code"]) == (g.id, "already_won")
    assert (await store.get(room, g.id)).entrants_count == 0


async def test_watch_rule(engine: Engine, room: str, http: httpx.AsyncClient) -> None:
    store = engine.node.service("giveaways")
    t0 = 1_900_000_000_000
    g = await store.create(room, GiveawayTerms(title="t", prize="p", winners=1,
                                               rule=EntryRule.WATCH, min_watch_s=120,
                                               duration_s=600), at_ms=t0)  # fmt: skip
    assert g.to_wire()["min_watch_s"] == 120
    with pytest.raises(RejectedError) as never:
        await store.enter(room, g.id, "ann", at_ms=t0 + 1000)
    assert never.value.code == "not_watched_enough"
    assert never.value.details == {"watched_s": 0, "min_watch_s": 120}
    watch = store.watchtime
    ann = Author("ann", "Ann", Role.VIEWER)
    watch.joined(room, ann, at_ms=t0)
    watch.left(room, ann, at_ms=t0 + 90_000)
    watch.joined(room, ann, at_ms=t0 + 100_000)  # back for a second session, still on
    await watch.flush()
    with pytest.raises(RejectedError) as short:
        await store.enter(room, g.id, "ann", at_ms=t0 + 129_000)
    assert short.value.details == {"watched_s": 119, "min_watch_s": 120}
    entered = await store.enter(room, g.id, "ann", at_ms=t0 + 130_000)
    assert entered["new"] is True
    watch.left(room, ann, at_ms=t0 + 140_000)
    await watch.flush()
    # over HTTP, with the real clock: `bob` never watched
    h = await open_giveaway(http, room, rule="watch", min_watch_s=60)
    error = failed(await enter(http, room, h["id"], "bob"), 422, "not_watched_enough")
    assert error["details"] == {"watched_s": 0, "min_watch_s": 60}
    failed(await http.post(f"/api/rooms/{room}/giveaways",
                           json={"title": "t", "prize": "p", "winners": 1, "rule": "watch"},
                           headers=auth(room, "host")), 400, "invalid_field")  # fmt: skip


async def test_watch_rule_with_a_real_viewer(
    http: httpx.AsyncClient, room: str, viewer_factory: ViewerFactory
) -> None:
    await viewer_factory(room, user="ann")
    g = await open_giveaway(http, room, rule="watch", min_watch_s=1)
    failed(await enter(http, room, g["id"], "ann"), 422, "not_watched_enough")  # just joined
    # Her watch time grows while she stays: refused (only) as not watched enough until it
    # reaches the minimum, then she is in.
    entered = await poll(
        lambda: enter(http, room, g["id"], "ann"),
        lambda r: r.status_code != 422 or r.json()["error"]["code"] != "not_watched_enough",
    )
    assert ok(entered)["new"] is True


# ---- limits ---------------------------------------------------------------------------------


async def test_one_win_per_show_and_recent_winners(
    engine: Engine, room: str, redis: aioredis.Redis, redis_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    store = engine.node.service("giveaways")
    terms = GiveawayTerms(title="t", prize="p", winners=1)
    g1 = await store.create(room, terms)
    await store.enter(room, g1.id, "ann")
    assert (await store.close(room, g1.id)).winners == ("ann",)

    # refused at entry when already excluded
    g2 = await store.create(room, msgspec.structs.replace(terms, one_win_per_show=True))
    with pytest.raises(RejectedError) as again:
        await store.enter(room, g2.id, "ann")
    assert again.value.code == "already_won"
    # a winner made while it was open is excluded at the draw, and that is recorded
    await store.enter(room, g2.id, "cy")
    g3 = await store.create(room, terms)
    await store.enter(room, g3.id, "cy")
    assert (await store.close(room, g3.id)).winners == ("cy",)
    drawn = await store.close(room, g2.id)
    assert (drawn.entrants, drawn.excluded, drawn.winners) == (("cy",), ("cy",), ())
    assert drawn.to_wire()["excluded_count"] == 1
    assert await main(["giveaway", "verify", room, g2.id, "--redis-url", redis_url,
                       "--json"]) == 0  # fmt: skip
    assert orjson.loads(capsys.readouterr().out)["excluded"] == ["cy"]

    # the last N closed: g3 (cy), then g2 (nobody); ann won g1, three closes ago
    g4 = await store.create(room, msgspec.structs.replace(terms, exclude_recent_winners=2))
    with pytest.raises(RejectedError) as recent:
        await store.enter(room, g4.id, "cy")
    assert recent.value.code == "recent_winner"
    await store.enter(room, g4.id, "ann")
    assert (await store.close(room, g4.id)).winners == ("ann",)
    assert await redis.lrange(keys.giveaways_closed(room), 0, -1) == [b"g1", b"g3", b"g2", b"g4"]
    assert await redis.hget(keys.giveaway_room_winners(room), "ann") == b"g1 g4"
    report = await audit_room(redis, room)
    assert report.ok, report.render()
    names = [c.name for c in report.checks if c.name.startswith("giveaways")]
    assert names == ["giveaways: every draw re-verifies", "giveaways: exclusions follow the limits",
                     "giveaways: winners have exactly their prizes"]  # fmt: skip

    # a tampered exclusion list re-verifies no more, and the audit says so
    await redis.hset(keys.giveaway(room, g2.id), "excluded", "[]")
    assert await main(["giveaway", "verify", room, g2.id, "--redis-url", redis_url,
                       "--json"]) == 1  # fmt: skip
    capsys.readouterr()
    report = await audit_room(redis, room)
    failing = {c.name for c in report.checks if not c.ok}
    assert failing == {"giveaways: every draw re-verifies",
                       "giveaways: exclusions follow the limits"}  # fmt: skip


async def test_limit_validation(http: httpx.AsyncClient, room: str) -> None:
    base = {"title": "t", "prize": "p", "winners": 1}
    for extra, field in [
        ({"one_win_per_show": "yes"}, "one_win_per_show"),
        ({"exclude_recent_winners": 101}, "exclude_recent_winners"),
        ({"exclude_recent_winners": -1}, "exclude_recent_winners"),
        ({"rule": "watch", "min_watch_s": 0}, "min_watch_s"),
        ({"rule": "lottery"}, "rule"),
        ({"prize_kind": "cash"}, "prize_kind"),
        ({"prize_kind": "product"}, "sku"),
        ({"prize_kind": "coupon", "template": "x1"}, "template"),
    ]:
        response = await http.post(
            f"/api/rooms/{room}/giveaways", json={**base, **extra}, headers=auth(room, "host")
        )
        error = failed(response, 400, "invalid_field")
        assert error["details"]["field"] == field, extra
    failed(await http.post(f"/api/rooms/{room}/giveaways",
                           json={**base, "prize_kind": "product", "sku": "NOPE"},
                           headers=auth(room, "host")), 404, "sku_not_found")  # fmt: skip
    failed(await http.post(f"/api/rooms/{room}/giveaways",
                           json={**base, "prize_kind": "coupon", "template": "t9"},
                           headers=auth(room, "host")), 404, "template_not_found")  # fmt: skip
    assert ok(await http.get(f"/api/rooms/{room}/giveaways"))["giveaways"] == []


# ---- prizes ---------------------------------------------------------------------------------


@pytest.fixture
async def seller(host: HostClient) -> HostClient:
    """The `room`'s host, with product p1 (SKUs DJ-S at 4900 and DJ-M at 5200)."""
    await host.create_product(**JACKET)
    return host


async def test_product_prize_reserved_notified_and_checked_out_at_zero(  # noqa: PLR0917
    http: httpx.AsyncClient, room: str, redis: aioredis.Redis, engine: Engine,
    seller: HostClient, viewer_factory: ViewerFactory,
) -> None:  # fmt: skip
    g = await open_giveaway(http, room, prize_kind="product", sku="DJ-M", winners=2,
                            prize=None)  # fmt: skip
    assert (g["prize"], g["prize_kind"], g["sku"]) == ("Denim jacket (M)", "product", "DJ-M")
    assert g["awards"] is None
    # the prize units are a private sale: not among the room's sales, not grabbable
    assert ok(await http.get(f"/api/rooms/{room}/sales"))["sales"] == []
    [prize_sale] = await engine.node.sales.list(room, private=True)
    assert (prize_sale.private, prize_sale.allotment) == (f"giveaway:{g['id']}", 2)
    viewers = {u: await viewer_factory(room, user=u) for u in ("ann", "bob", "cy")}
    with pytest.raises(LivecartClientError, match="sale_not_found"):
        await viewers["cy"].grab(prize_sale.id)
    for user in viewers:
        ok(await enter(http, room, g["id"], user))

    closed = ok(await close(http, room, g["id"]))
    assert set(closed["awards"]) == set(closed["winners"])
    for user in closed["winners"]:
        award = closed["awards"][user]
        reservation = await engine.node.stock.reservation(room, award["reservation"])
        assert (reservation["user"], reservation["state"], reservation["price"]) == (
            user, "held", 0)  # fmt: skip
        assert reservation["expires_at"] == award["expires_at"]
        assert (award["sale"], award["price"], award["currency"]) == (prize_sale.id, 0, "USD")
        won = await notice(viewers[user], "giveaway_won")
        assert won == {"type": "notice", "kind": "giveaway_won", "user": user,
                       "giveaway": g["id"], "title": "Lucky bag", "prize": "Denim jacket (M)",
                       "prize_kind": "product", **award}  # fmt: skip
    [loser] = set(viewers) - set(closed["winners"])
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(notice(viewers[loser], "giveaway_won"), 0.3)
    report = await audit_room(redis, room)
    assert report.ok, report.render()

    # a zero-price line: the winner pays the shipping only
    winner = closed["winners"][0]
    async with ShopperClient(engine.base_url, room, token(room, "viewer", winner)) as shopper:
        held = closed["awards"][winner]["reservation"]
        order = await shopper.checkout([held], address=ADDRESS, contact={"email": "a@b.co"})
    assert order["pricing"]["subtotal"] == 0
    assert order["pricing"]["total"] == engine.settings.shipping_fee
    report = await audit_room(redis, room)
    assert report.ok, report.render()


async def test_coupon_prize_is_a_private_drop_claimed_for_the_winners(  # noqa: PLR0917 (fixtures)
    http: httpx.AsyncClient, room: str, redis: aioredis.Redis, engine: Engine,
    host: HostClient, viewer_factory: ViewerFactory,
) -> None:  # fmt: skip
    template = await host.create_coupon("amount_off", "5 off", 10, "USD", amount=500)
    g = await open_giveaway(http, room, prize_kind="coupon", template=template["id"],
                            winners=2, prize=None)  # fmt: skip
    assert (g["prize"], g["template"]) == ("5 off", template["id"])
    [drop] = await engine.node.coupons.drops(room, private=True)
    assert (drop.quantity, drop.private) == (2, f"giveaway:{g['id']}")
    assert (await host.coupon_templates())[0]["issued"] == 2  # set aside at open
    # not listed: neither by the API nor on the viewers' drop cards
    assert await engine.node.coupons.drops(room) == []
    assert ok(await http.get(f"/api/rooms/{room}/coupons/drops")) == {"drops": []}
    # nobody can claim from it, and it was never announced
    claim = await http.post(f"/api/rooms/{room}/coupons/drops/{drop.id}/claim",
                            json={"id": "r1"}, headers=auth(room, "viewer", "dee"))  # fmt: skip
    failed(claim, 404, "drop_not_found")
    log = await redis.xrange(keys.room_stream(room))
    assert b"coupon_dropped" not in [f[b"k"] for _, f in log]
    viewers = {u: await viewer_factory(room, user=u) for u in ("ann", "bob", "cy")}
    assert all(not v.welcome.get("drops") for v in viewers.values())
    for user in viewers:
        ok(await enter(http, room, g["id"], user))
    closed = ok(await close(http, room, g["id"]))
    coupons = {user: award["coupon"] for user, award in closed["awards"].items()}
    assert all(award == {"coupon": award["coupon"], "drop": drop.id, "template": template["id"]}
               for award in closed["awards"].values())  # fmt: skip
    assert set(coupons) == set(closed["winners"])
    for user, coupon in coupons.items():
        mine = ok(await http.get(f"/api/rooms/{room}/coupons/mine",
                                 headers=auth(room, "viewer", user)))["coupons"]  # fmt: skip
        assert [(c["id"], c["state"], c["drop"]) for c in mine] == [(coupon, "claimed", drop.id)]
        won = await notice(viewers[user], "giveaway_won")
        assert (won["coupon"], won["prize_kind"], won["prize"]) == (coupon, "coupon", "5 off")
        assert (won["drop"], won["template"]) == (drop.id, template["id"])
    report = await audit_room(redis, room)
    assert report.ok, report.render()

    # a coupon record handed to someone else: the audit catches it
    coupon = next(iter(coupons.values()))
    record = orjson.loads(await redis.hget(keys.coupons(room), coupon))
    await redis.hset(keys.coupons(room), coupon, orjson.dumps({**record, "u": "mallory"}))
    report = await audit_room(redis, room)
    assert not report.ok
    [bad] = [c for c in report.checks if not c.ok and c.name.startswith("giveaways")]
    assert bad.name == "giveaways: winners have exactly their prizes"
    assert "is not theirs" in bad.detail


async def test_awards_finish_after_a_crash_and_never_double(
    engine: Engine, room: str, redis: aioredis.Redis, seller: HostClient
) -> None:
    store = engine.node.service("giveaways")
    terms = GiveawayTerms(title="t", winners=2, prize_kind=PrizeKind.PRODUCT, sku="DJ-S")
    g = await store.create(room, terms)
    for user in ("ann", "bob", "cy"):
        await store.enter(room, g.id, user)
    # the process dies right after the draw: closed, nobody awarded yet
    drawn = await store._draw(room, g.id, None)
    assert drawn.state.value == "closed"
    assert (drawn.awards, drawn.awarded) == ({}, False)
    assert drawn.to_wire()["awards"] == {}
    # the next read finishes the awards
    read = await store.get(room, g.id)
    assert read.awarded
    assert set(read.awards) == set(read.winners)
    # dying again between giving a prize and recording it: the award replays, no second unit
    first = read.winners[0]
    await redis.hdel(keys.giveaway_awards(room, g.id), first)
    await redis.hdel(keys.giveaway(room, g.id), "awarded")
    assert first not in (await store._read(room, g.id)).awards
    again = await store.close(room, g.id)
    assert again.awards == read.awards
    assert (await store.close(room, g.id)).awards == read.awards
    sale = await engine.node.sales.get(room, read.prize_sale or "")
    assert (sale.reserved, sale.available) == (2, 0)
    report = await audit_room(redis, room)
    assert report.ok, report.render()

    # a prize unit for someone who did not win: the audit catches it
    [loser] = {"ann", "bob", "cy"} - set(read.winners)
    await engine.node.sales.adjust(room, sale.id, "topup", 1)
    await engine.node.stock.award(room, sale.id, loser, "forged", units=1, price=0,
                                  hold_ms=60_000)  # fmt: skip
    report = await audit_room(redis, room)
    [bad] = [c for c in report.checks if not c.ok]
    assert bad.name == "giveaways: winners have exactly their prizes"
    assert f"{loser} holds a prize unit but did not win" in bad.detail


async def test_concurrent_closes_award_once(
    engine_factory: Any, engine: Engine, room: str, redis: aioredis.Redis, seller: HostClient
) -> None:
    other = await engine_factory()
    g = await engine.node.service("giveaways").create(
        room, GiveawayTerms(title="t", winners=3, prize_kind=PrizeKind.PRODUCT, sku="DJ-S")
    )
    for i in range(10):
        await engine.node.service("giveaways").enter(room, g.id, f"u{i}")
    stores = [engine.node.service("giveaways"), other.node.service("giveaways")] * 3
    results = await asyncio.gather(*(s.close(room, g.id) for s in stores))
    assert len({orjson.dumps(r.awards) for r in results}) == 1
    assert set(results[0].awards) == set(results[0].winners)
    sale = await engine.node.sales.get(room, results[0].prize_sale or "")
    assert (sale.reserved, sale.available) == (3, 0)
    report = await audit_room(redis, room)
    assert report.ok, report.render()
