"""engine.giveaways: the draw (deterministic, recomputable from the revealed seed), entry
rules, closing exactly once, the seed hidden until the draw, opened/closed entries reaching
viewers, and `livecart giveaway verify`."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from redis import asyncio as aioredis

from engine import keys
from engine.app import Engine
from engine.cli import main as cli_main
from engine.errors import ConflictError
from engine.giveaways import commitment, draw, verify
from tests.conftest import ViewerFactory, token
from tests.test_api_catalog import failed, host_token, next_entry, ok


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
    store = engine.node.giveaways
    t0 = 1_900_000_000_000
    g = await store.create(room, {"title": "t", "prize": "p", "winners": 1, "duration_s": 10},
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
    g = await engine.node.giveaways.create(room, {"title": "t", "prize": "p", "winners": 2})
    for i in range(20):
        await engine.node.giveaways.enter(room, g.id, f"u{i}")
    stores = [engine.node.giveaways, other.node.giveaways] * 4
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
        "entrants": ["ann", "bob", "cy", "dee"], "winners": closed["winners"],
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
    # tamper with the seed: the commitment no longer matches
    await redis.hset(keys.giveaway(room, gid), "seed", "00" * 32)
    assert await main(["giveaway", "verify", room, gid, "--redis-url", redis_url, "--json"]) == 1
    assert orjson.loads(capsys.readouterr().out)["commitment_ok"] is False
