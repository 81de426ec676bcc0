"""engine/features/polls end to end: a real engine (and two for the cross-process case),
real Redis, real WebSockets. Opening, voting (frame and HTTP), results coalesced in ticks,
closing by the host and at the end, the room log, the report and the audit."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from clients import HostClient, LivecartClientError, ViewerClient
from engine.core.feature import load_features
from engine.features.polls.store import PollStore, PollTerms
from engine.insights.audit import audit_room
from engine.insights.report import load_show, summarize
from engine.server.app import Engine
from tests.conftest import EngineFactory, RoomFactory, ViewerFactory, eventually, token


def host_of(engine: Engine, room: str) -> HostClient:
    return HostClient(engine.base_url, room, token(room, "host", "host-1"))


def polls_field(event: dict[str, Any]) -> dict[str, Any]:
    return event.get("polls", {}) if event.get("type") == "tick" else {}


def entry_of(event: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for entry in event.get("entries", []) if event.get("type") == "tick" else []:
        if entry["kind"] == kind:
            return entry
    return None


async def test_a_poll_from_opening_to_its_results(
    engine: Engine, room: str, viewer_factory: ViewerFactory
) -> None:
    ana = await viewer_factory(room, user="ana")
    bob = await viewer_factory(room, user="bob")
    guest = await viewer_factory(room, None)
    async with host_of(engine, room) as host:
        poll = await host.open_poll("Which colour next?", ["Red", "Blue", "Green"])
        assert poll["id"] == "q1"
        assert (poll["state"], poll["votes"], poll["total"]) == ("open", [0, 0, 0], 0)
        opened = await ana.wait_for(lambda e: entry_of(e, "poll_opened") is not None)
        assert entry_of(opened, "poll_opened")["question"] == "Which colour next?"

        assert await ana.vote("q1", 1) == {"poll": "q1", "option": 1, "changed": False}
        assert await bob.vote("q1", 1) == {"poll": "q1", "option": 1, "changed": False}
        assert await ana.vote("q1", 1) == {"poll": "q1", "option": 1, "changed": False}
        with pytest.raises(LivecartClientError) as again:
            await ana.vote("q1", 2)  # not changeable
        assert again.value.code == "already_voted"
        with pytest.raises(LivecartClientError) as anonymous:
            await guest.vote("q1", 0)
        assert anonymous.value.code == "forbidden"
        refusals = [
            ("q9", 0, "poll_not_found"),
            ("q1", 3, "invalid_field"),
            ("x", 0, "invalid_field"),
            ("q1", True, "invalid_field"),
        ]
        for poll_id, option, code in refusals:
            with pytest.raises(LivecartClientError) as refused:
                await bob.vote(poll_id, option)  # type: ignore[arg-type]
            assert refused.value.code == code

        # Results reach every viewer in ticks, coalesced, and a joiner gets them in its welcome.
        tick = await guest.wait_for(lambda e: polls_field(e).get("q1", {}).get("total") == 2)
        assert polls_field(tick)["q1"] == {"votes": [0, 2, 0], "total": 2, "state": "open"}
        late = await viewer_factory(room, user="cy")
        assert [p["id"] for p in late.welcome["polls"]] == ["q1"]
        assert late.welcome["polls"][0]["votes"] == [0, 2, 0]

        closed = await host.close_poll("q1")
        assert (closed["state"], closed["votes"], closed["total"]) == ("closed", [0, 2, 0], 2)
        final = await bob.wait_for(lambda e: entry_of(e, "poll_closed") is not None)
        assert entry_of(final, "poll_closed")["votes"] == [0, 2, 0]
        with pytest.raises(LivecartClientError) as after:
            await late.vote("q1", 0)
        assert after.value.code == "poll_closed"
        with pytest.raises(LivecartClientError) as twice:
            await host.close_poll("q1")
        assert twice.value.code == "poll_closed"
        assert (await viewer_factory(room, user="dee")).welcome["polls"] == []
        assert [p["id"] for p in await host.polls()] == ["q1"]

    assert engine.node is not None
    report = await audit_room(engine.node.redis, room)
    assert report.ok, report.render()
    assert any(check.name.startswith("poll q1") for check in report.checks)
    summary = summarize(await load_show(engine.node.redis, room), generated_at=0)
    assert summary["polls"][0]["votes"] == [0, 2, 0]


async def test_a_changeable_vote_moves_and_http_votes_count(
    engine: Engine, room: str, viewer_factory: ViewerFactory
) -> None:
    ana = await viewer_factory(room, user="ana")
    async with host_of(engine, room) as host:
        await host.open_poll("Size?", ["S", "M"], changeable=True)
    assert await ana.vote("q1", 0) == {"poll": "q1", "option": 0, "changed": False}
    assert await ana.vote("q1", 1) == {"poll": "q1", "option": 1, "changed": True}
    async with httpx.AsyncClient(base_url=engine.base_url) as http:
        bo = {"Authorization": f"Bearer {token(room, 'viewer', 'bo')}"}
        answer = await http.post(f"/api/rooms/{room}/polls/q1/votes", json={"option": 0},
                                 headers=bo)  # fmt: skip
        assert answer.status_code == 200, answer.text
        anonymous = await http.post(f"/api/rooms/{room}/polls/q1/votes", json={"option": 0})
        assert anonymous.status_code == 401
        poll = (await http.get(f"/api/rooms/{room}/polls/q1")).json()
    assert (poll["votes"], poll["total"]) == ([1, 1], 2)
    assert engine.node is not None
    assert (await audit_room(engine.node.redis, room)).ok


async def test_a_poll_ends_on_time(engine: Engine, room: str) -> None:
    """The sweeper closes a poll at its end, once, whichever process gets there first."""
    assert engine.node is not None
    store = engine.node.feature_services["polls"]
    assert isinstance(store, PollStore)
    terms = PollTerms("Now?", ["Yes", "No"], duration_s=10)
    opened = await store.open(room, terms, at_ms=int(time.time() * 1000) - 20_000)
    assert opened.ends_at < time.time() * 1000

    async def closed() -> bool:
        return (await store.get(room, opened.id)).state == "closed"

    await eventually(closed)
    poll = await store.get(room, opened.id)
    assert poll.closed_at == poll.ends_at  # closed as of its end, not of the sweep


@pytest.mark.parametrize(
    ("body", "field"),
    [({"options": ["a", "b"]}, "question"), ({"question": "q", "options": ["a"]}, "options"),
     ({"question": "q", "options": ["a"] * 7}, "options"),
     ({"question": "q", "options": ["a", "a"]}, "options"),
     ({"question": "q", "options": ["a", ""]}, "options[1]"),
     ({"question": "q", "options": ["a", "b"], "duration_s": 5}, "duration_s"),
     ({"question": "q", "options": ["a", "b"], "changeable": "yes"}, "changeable")],
)  # fmt: skip
async def test_bad_terms_are_refused_with_their_field(
    engine: Engine, room: str, body: dict[str, Any], field: str
) -> None:
    async with httpx.AsyncClient(base_url=engine.base_url) as http:
        host = {"Authorization": f"Bearer {token(room, 'host')}"}
        answer = await http.post(f"/api/rooms/{room}/polls", json=body, headers=host)
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert (error["code"], error["details"]["field"]) == ("invalid_field", field)


async def test_results_add_up_across_two_engines(
    engine_factory: EngineFactory, room_factory: RoomFactory
) -> None:
    """Votes on two processes: every viewer on both sees the same coalesced results."""
    first, second = await engine_factory(), await engine_factory()
    room = await room_factory(first)
    here = [ViewerClient(first.ws_url, room, token(room, "viewer", f"a{n}")) for n in range(3)]
    there = [ViewerClient(second.ws_url, room, token(room, "viewer", f"b{n}")) for n in range(4)]
    for client in [*here, *there]:
        await client.connect()
    try:
        async with host_of(first, room) as host:
            await host.open_poll("Next product?", ["Bag", "Hat"])
        for client in [*here, *there]:
            await client.wait_for(lambda e: entry_of(e, "poll_opened") is not None)
        await asyncio.gather(*(c.vote("q1", 0) for c in here), *(c.vote("q1", 1) for c in there))
        for client in [here[0], there[0]]:
            tick = await client.wait_for(lambda e: polls_field(e).get("q1", {}).get("total") == 7)
            assert polls_field(tick)["q1"]["votes"] == [3, 4]
        async with host_of(second, room) as host:
            await host.close_poll("q1")
        for client in [here[1], there[1]]:
            final = await client.wait_for(lambda e: entry_of(e, "poll_closed") is not None)
            assert entry_of(final, "poll_closed")["votes"] == [3, 4]
    finally:
        for client in [*here, *there]:
            await client.close()


def test_the_feature_plugs_in_through_the_seam() -> None:
    (feature,) = load_features(["engine.features.polls"])
    assert feature.name == "polls"
    assert [frame.type for frame in feature.frames] == ["vote"]
    assert feature.web_modules() == {"console": "/features/polls/console.js",
                                     "viewer": "/features/polls/viewer.js"}  # fmt: skip
    with pytest.raises(ValueError, match="defines no FEATURE"):
        load_features(["engine.features"])


def doc_examples() -> list[dict[str, Any]]:
    text = (Path(__file__).resolve().parent.parent / "docs" / "polls.md").read_text()
    return [orjson.loads(block) for block in re.findall(r"```json\n(.*?)\n```", text, re.S)]


def shape(value: Any) -> Any:
    """Keys (recursively) and value types, not values."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in sorted(value.items()) if k != "seq"}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return "null" if value is None else type(value).__name__


async def test_the_doc_examples_are_what_the_engine_sends(
    engine: Engine, room: str, viewer_factory: ViewerFactory
) -> None:
    """docs/polls.md is a contract: each JSON example has the shape of the real message."""
    poll_doc, vote_doc, ack_doc, results_doc, closed_doc = doc_examples()
    ana = await viewer_factory(room, user="ana")
    async with host_of(engine, room) as host:
        await host.open_poll("Which colour next?", ["Red", "Blue", "Green"])
        frame = {k: v for k, v in vote_doc.items() if k != "id"}
        ack = await ana.request(frame, request_id=vote_doc["id"])
        results = await ana.wait_for(lambda e: "q1" in polls_field(e))
        closed = await host.close_poll("q1")
        final = await ana.wait_for(lambda e: entry_of(e, "poll_closed") is not None)
    polls = polls_field(results)
    assert shape(poll_doc) == shape({**closed, "closed_at": None})
    assert shape(ack_doc) == shape(ack)
    assert shape({**results_doc, "polls": results_doc["polls"]}) == shape(
        {k: v for k, v in results.items() if k in {"type", "t", "offset", "polls"}}
        | {"polls": polls}
    )
    assert shape(closed_doc) == shape(
        {k: v for k, v in final.items() if k in {"type", "t", "offset"}}
        | {"entries": [entry_of(final, "poll_closed")]}
    )


async def test_a_private_room_s_polls_need_a_token(
    engine: Engine, room_factory: RoomFactory
) -> None:
    """The feature's reads go through the same private-room check as every room read."""
    room = await room_factory(settings={"allow_anonymous": False})
    async with host_of(engine, room) as host:
        await host.open_poll("Private?", ["Yes", "No"])
    async with httpx.AsyncClient(base_url=engine.base_url) as http:
        for path in (f"/api/rooms/{room}/polls", f"/api/rooms/{room}/polls/q1"):
            assert (await http.get(path)).status_code == 401
            viewer = {"Authorization": f"Bearer {token(room, 'viewer', 'ana')}"}
            assert (await http.get(path, headers=viewer)).status_code == 200
