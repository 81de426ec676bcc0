"""engine.commerce.coupons against a real Redis: templates, drops, claims (batched, idempotent,
limited), a coupon rain, and a coupon's states through checkout, cancel and payment."""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from typing import Any

import orjson
import pytest

from engine.commerce.coupons import (
    DEFAULT_CLAIM_WINDOW_S,
    DEFAULT_VALIDITY_S,
    Drop,
    DropTerms,
    Template,
    TemplateTerms,
)
from engine.commerce.orders import OrderState
from engine.commerce.pricing import CouponKind
from engine.commerce.stock import GrabRequest
from engine.core.errors import ConflictError, NotFoundError, ProtocolError, RejectedError
from engine.store import keys
from engine.store.redis_client import text
from tests.conftest import T0, Store, decoded, now_ms

DAY_MS = 24 * 3600 * 1000
AMOUNT_OFF: dict[str, Any] = {
    "kind": "amount_off", "title": "5 off", "currency": "EUR", "amount": 500, "total": 100,
}  # fmt: skip


async def template(store: Store, at: int = T0, **terms: Any) -> Template:
    """A template (amount_off 500 EUR, 100 in total, unless `terms` say otherwise), its
    terms sent as the route's body."""
    body = await decoded({**AMOUNT_OFF, **terms}, TemplateTerms)
    return await store.coupons.create_template(store.room, body, at_ms=at)


async def drop(store: Store, template_id: str, quantity: int, at: int = T0,
               **terms: Any) -> Drop:  # fmt: skip
    body = await decoded({"quantity": quantity, **terms}, DropTerms)
    return await store.coupons.drop(store.room, template_id, body, at_ms=at)


async def claim(store: Store, drop_id: str, user: str, request: str | None = None,
                at: int = T0) -> dict[str, Any]:  # fmt: skip
    """One claim at a pinned time: the answer's body plus `replayed`."""
    request = request or secrets.token_hex(4)
    [answer] = await store.coupons.claim_batch(
        store.room, drop_id, [GrabRequest(user, request, 1)], at_ms=at
    )
    return {**answer.body, "replayed": answer.replayed}


async def live_drop(store: Store, quantity: int, **terms: Any) -> Drop:
    """A drop of a fresh template that opens now by the real clock (for claims through the
    batcher and for checkout, which use Redis time)."""
    body = await decoded({**AMOUNT_OFF, "total": quantity, **terms}, TemplateTerms)
    made = await store.coupons.create_template(store.room, body)
    return await store.coupons.drop(store.room, made.id, DropTerms(quantity=quantity))


async def last_entry(store: Store, stream: str) -> dict[str, str]:
    """The fields of a stream's newest entry."""
    newest: Any = await store.shop.redis.xrevrange(stream, count=1)
    [(_, fields)] = newest
    return {text(k): text(v) for k, v in fields.items()}


# ---- templates -----------------------------------------------------------------------------


async def test_a_template_gets_defaults_for_what_is_not_given(store: Store) -> None:
    made = await template(store)
    assert made == Template(
        id="t1", title="5 off", kind=CouponKind.AMOUNT_OFF, currency="EUR", amount=500,
        percent=0, cap=None, min_spend=0, skus=None, valid_from=T0,
        valid_until=T0 + DEFAULT_VALIDITY_S * 1000, total=100, per_user_limit=1,
        stackable=False,
    )  # fmt: skip
    assert await store.coupons.template(store.room, "t1") == made
    assert await store.coupons.templates(store.room) == [made]


async def test_a_template_keeps_every_term_given(store: Store) -> None:
    made = await template(
        store, kind="percent_off", title="15% on tees", percent=15, cap=2000, min_spend=5000,
        skus=["SKU-1", "SKU-2", "SKU-1"], valid_from=T0 + 1000, valid_until=T0 + DAY_MS,
        total=50, per_user_limit=3, stackable=True,
    )  # fmt: skip
    assert made.to_wire() == {
        "id": "t1", "title": "15% on tees", "kind": "percent_off", "currency": "EUR",
        "amount": 0, "percent": 15, "cap": 2000, "min_spend": 5000, "skus": ["SKU-1", "SKU-2"],
        "valid_from": T0 + 1000, "valid_until": T0 + DAY_MS, "total": 50,
        "per_user_limit": 3, "stackable": True,
    }  # fmt: skip
    assert Template.from_wire(made.to_wire()) == made


async def test_terms_of_other_kinds_are_ignored(store: Store) -> None:
    shipping = await template(store, kind="free_shipping", amount=500, percent=10, cap=5)
    assert (shipping.amount, shipping.percent, shipping.cap) == (0, 0, None)
    amount = await template(store, percent=10, cap=5)
    assert (amount.amount, amount.percent, amount.cap) == (500, 0, None)


async def test_template_ids_count_up(store: Store) -> None:
    ids = [(await template(store)).id for _ in range(3)]
    assert ids == ["t1", "t2", "t3"]
    assert [t.id for t in await store.coupons.templates(store.room)] == ids


@pytest.mark.parametrize(
    ("terms", "field"),
    [
        ({"kind": "half_off"}, "kind"),
        ({"kind": None}, "kind"),
        ({"title": ""}, "title"),
        ({"title": "x" * 81}, "title"),
        ({"title": 5}, "title"),
        ({"currency": "eur"}, "currency"),
        ({"currency": "EURO"}, "currency"),
        ({"currency": None}, "currency"),
        ({"amount": 0}, "amount"),
        ({"amount": None}, "amount"),
        ({"amount": 10**12 + 1}, "amount"),
        ({"amount": "500"}, "amount"),
        ({"amount": True}, "amount"),
        ({"amount": 5.5}, "amount"),
        ({"kind": "percent_off", "percent": 0}, "percent"),
        ({"kind": "percent_off", "percent": 101}, "percent"),
        ({"kind": "percent_off"}, "percent"),
        ({"kind": "percent_off", "percent": 10, "cap": 0}, "cap"),
        ({"kind": "percent_off", "percent": 10, "cap": "5"}, "cap"),
        ({"min_spend": -1}, "min_spend"),
        ({"skus": []}, "skus"),
        ({"skus": "SKU-1"}, "skus"),
        ({"skus": [5]}, "skus"),
        ({"skus": ["bad sku"]}, "skus"),
        ({"skus": [f"S{n}" for n in range(101)]}, "skus"),
        ({"valid_from": -1}, "valid_from"),
        ({"valid_until": T0}, "valid_until"),
        ({"valid_from": T0 + 10, "valid_until": T0 + 10}, "valid_until"),
        ({"valid_until": T0 - 1}, "valid_until"),
        ({"total": 0}, "total"),
        ({"total": 1_000_001}, "total"),
        ({"total": None}, "total"),
        ({"per_user_limit": 0}, "per_user_limit"),
        ({"per_user_limit": 101}, "per_user_limit"),
        ({"stackable": "yes"}, "stackable"),
        ({"stackable": 1}, "stackable"),
    ],
)
async def test_template_validation(store: Store, terms: dict[str, Any], field: str) -> None:
    with pytest.raises(ProtocolError) as refused:
        await template(store, **terms)
    assert (refused.value.code, refused.value.details) == ("invalid_field", {"field": field})
    assert await store.coupons.templates(store.room) == []
    # A refused template takes no id.
    assert (await template(store)).id == "t1"


@pytest.mark.parametrize("body", [None, [], "amount_off", 5])
async def test_a_template_body_must_be_an_object(store: Store, body: Any) -> None:
    with pytest.raises(ProtocolError) as refused:
        await decoded(body, TemplateTerms)
    assert refused.value.code == "bad_request"


async def test_unknown_and_malformed_template_ids(store: Store) -> None:
    with pytest.raises(NotFoundError) as missing:
        await store.coupons.template(store.room, "t7")
    assert missing.value.code == "template_not_found"
    for bad in ("7", "d2", "t", "t1x"):
        with pytest.raises(ProtocolError) as malformed:
            await store.coupons.template(store.room, bad)
        assert malformed.value.details == {"field": "template"}


# ---- drops ---------------------------------------------------------------------------------


async def test_a_drop_opens_now_for_the_default_window(store: Store) -> None:
    made = await template(store, per_user_limit=2)
    dropped = await drop(store, made.id, 10)
    # Templates and drops share one counter: t1, then d2.
    assert dropped == Drop(
        id="d2", template="t1", quantity=10, remaining=10, claimed=0, limit=2, created_at=T0,
        opens_at=T0, closes_at=T0 + DEFAULT_CLAIM_WINDOW_S * 1000,
    )  # fmt: skip
    assert dropped.state(T0) == "live"
    assert await store.coupons.get_drop(store.room, "d2") == dropped
    assert await store.coupons.drops(store.room) == [dropped]
    assert await store.coupons.issued(store.room) == {"t1": 10}


async def test_a_drop_with_a_countdown_is_scheduled_then_live_then_ended(store: Store) -> None:
    made = await template(store)
    dropped = await drop(store, made.id, 5, countdown_s=30, claim_window_s=60)
    assert (dropped.opens_at, dropped.closes_at) == (T0 + 30_000, T0 + 90_000)
    states = [dropped.state(at) for at in (T0, T0 + 29_999, T0 + 30_000, T0 + 89_999, T0 + 90_000)]
    assert states == ["scheduled", "scheduled", "live", "live", "ended"]
    assert dropped.to_wire(T0) == {
        "id": "d2", "template": "t1", "quantity": 5, "limit": 1, "created_at": T0,
        "opens_at": T0 + 30_000, "closes_at": T0 + 90_000, "private": None, "tiers": None,
        "remaining": 5, "claimed": 0, "state": "scheduled",
    }  # fmt: skip


async def test_drops_never_exceed_the_template_total(store: Store) -> None:
    made = await template(store, total=10)
    await drop(store, made.id, 4)
    await drop(store, made.id, 4)
    with pytest.raises(ConflictError) as over:
        await drop(store, made.id, 3)
    assert (over.value.code, over.value.details) == (
        "coupons_exhausted", {"total": 10, "issued": 8})  # fmt: skip
    await drop(store, made.id, 2)
    with pytest.raises(ConflictError) as empty:
        await drop(store, made.id, 1)
    assert (empty.value.code, empty.value.details) == (
        "coupons_exhausted", {"total": 10, "issued": 10})  # fmt: skip
    assert [d.quantity for d in await store.coupons.drops(store.room)] == [4, 4, 2]
    assert await store.coupons.issued(store.room) == {"t1": 10}
    await store.audit_ok()


async def test_one_drop_cannot_exceed_the_total_either(store: Store) -> None:
    made = await template(store, total=10)
    with pytest.raises(ConflictError) as over:
        await drop(store, made.id, 11)
    assert over.value.code == "coupons_exhausted"
    assert await store.coupons.drops(store.room) == []
    assert await store.coupons.issued(store.room) == {}


async def test_concurrent_drops_never_exceed_the_total(store: Store) -> None:
    made = await template(store, total=25)
    results = await asyncio.gather(
        *(drop(store, made.id, 3) for _ in range(20)), return_exceptions=True
    )
    dropped = [r for r in results if isinstance(r, Drop)]
    refused = [r for r in results if not isinstance(r, Drop)]
    assert len(dropped) == 8  # 8 x 3 = 24; a 9th would make 27
    assert {r.code for r in refused if isinstance(r, ConflictError)} == {"coupons_exhausted"}
    assert len(refused) == 12
    assert await store.coupons.issued(store.room) == {made.id: 24}
    await store.audit_ok()


@pytest.mark.parametrize(
    ("terms", "field"),
    [
        ({"quantity": 0}, "quantity"),
        ({"quantity": None}, "quantity"),
        ({"quantity": 1_000_001}, "quantity"),
        ({"quantity": "5"}, "quantity"),
        ({"quantity": 5, "countdown_s": -1}, "countdown_s"),
        ({"quantity": 5, "countdown_s": 86_401}, "countdown_s"),
        ({"quantity": 5, "claim_window_s": 0}, "claim_window_s"),
        ({"quantity": 5, "claim_window_s": 7 * 86_400 + 1}, "claim_window_s"),
    ],
)
async def test_drop_validation(store: Store, terms: dict[str, Any], field: str) -> None:
    made = await template(store)
    with pytest.raises(ProtocolError) as refused:
        await store.coupons.drop(store.room, made.id, await decoded(terms, DropTerms), at_ms=T0)
    assert (refused.value.code, refused.value.details) == ("invalid_field", {"field": field})
    assert await store.coupons.drops(store.room) == []
    assert await store.coupons.issued(store.room) == {}


async def test_a_drop_of_an_unknown_template_is_refused(store: Store) -> None:
    with pytest.raises(NotFoundError) as missing:
        await drop(store, "t9", 5)
    assert missing.value.code == "template_not_found"


async def test_unknown_and_malformed_drop_ids(store: Store) -> None:
    with pytest.raises(NotFoundError) as missing:
        await store.coupons.get_drop(store.room, "d9")
    assert missing.value.code == "drop_not_found"
    for bad in ("9", "t1", "d", "d1.1"):
        with pytest.raises(ProtocolError) as malformed:
            await store.coupons.get_drop(store.room, bad)
        assert malformed.value.details == {"field": "drop"}


async def test_a_drop_is_logged_for_viewers_and_the_outbox(store: Store) -> None:
    made = await template(store, min_spend=2000, per_user_limit=2)
    await drop(store, made.id, 7, countdown_s=10, claim_window_s=60)
    entry = await last_entry(store, keys.room_stream(store.room))
    assert (entry["k"], entry["r"]) == ("coupon_dropped", "d2")
    assert orjson.loads(entry["d"]) == {
        "template": "t1", "title": "5 off", "coupon_kind": "amount_off", "currency": "EUR",
        "amount": 500, "percent": 0, "cap": None, "min_spend": 2000, "skus": None,
        "valid_from": T0, "valid_until": T0 + DEFAULT_VALIDITY_S * 1000, "per_user_limit": 2,
        "stackable": False, "drop": "d2", "quantity": 7, "opens_at": T0 + 10_000,
        "closes_at": T0 + 70_000, "server_time": T0, "tiers": None,
    }  # fmt: skip
    assert await last_entry(store, keys.outbox(store.room)) == {
        "type": "coupons_dropped",
        "drop": "d2",
        "template": "t1",
        "units": "7",
        "at": str(T0),
    }


# ---- claims --------------------------------------------------------------------------------


async def test_a_claim_gets_the_next_coupon_of_the_drop(store: Store) -> None:
    dropped = await drop(store, (await template(store)).id, 3)
    assert await claim(store, dropped.id, "ana") == {
        "status": "claimed",
        "coupon": "d2.1",
        "template": "t1",
        "replayed": False,
    }
    assert (await claim(store, dropped.id, "bob"))["coupon"] == "d2.2"
    after = await store.coupons.get_drop(store.room, dropped.id)
    assert (after.remaining, after.claimed) == (1, 2)
    assert await store.coupons.record(store.room, "d2.1") == {
        "u": "ana",
        "t": "t1",
        "d": "d2",
        "s": "claimed",
        "c": T0,
    }


async def test_a_claim_before_the_countdown_ends_is_not_started(store: Store) -> None:
    dropped = await drop(store, (await template(store)).id, 3, countdown_s=10)
    early = await claim(store, dropped.id, "ana", at=T0 + 9_999)
    assert early == {"status": "not_started", "opens_at": T0 + 10_000, "replayed": False}
    assert (await claim(store, dropped.id, "ana", at=T0 + 10_000))["status"] == "claimed"


async def test_a_claim_after_the_window_is_ended(store: Store) -> None:
    dropped = await drop(store, (await template(store)).id, 3, claim_window_s=60)
    assert (await claim(store, dropped.id, "ana", at=T0 + 59_999))["status"] == "claimed"
    assert await claim(store, dropped.id, "bob", at=T0 + 60_000) == {
        "status": "ended",
        "replayed": False,
    }
    assert (await store.coupons.get_drop(store.room, dropped.id)).remaining == 2


async def test_a_claim_of_an_empty_drop_is_sold_out(store: Store) -> None:
    dropped = await drop(store, (await template(store)).id, 2)
    for user in ("ana", "bob"):
        assert (await claim(store, dropped.id, user))["status"] == "claimed"
    assert await claim(store, dropped.id, "cid") == {"status": "sold_out", "replayed": False}
    after = await store.coupons.get_drop(store.room, dropped.id)
    assert (after.remaining, after.claimed, after.state(T0)) == (0, 2, "sold_out")
    await store.audit_ok()


async def test_a_claim_of_an_unknown_drop_is_drop_not_found(store: Store) -> None:
    assert await claim(store, "d99", "ana") == {"status": "drop_not_found", "replayed": False}
    assert await store.shop.redis.exists(keys.coupon_drop_answers(store.room, "d99")) == 0


async def test_one_coupon_per_user_by_default(store: Store) -> None:
    dropped = await drop(store, (await template(store)).id, 5)
    assert (await claim(store, dropped.id, "ana"))["status"] == "claimed"
    assert await claim(store, dropped.id, "ana") == {
        "status": "limit_reached",
        "limit": 1,
        "replayed": False,
    }
    assert (await store.coupons.get_drop(store.room, dropped.id)).remaining == 4


async def test_the_limit_holds_across_drops_of_one_template(store: Store) -> None:
    made = await template(store)
    first, second = await drop(store, made.id, 5), await drop(store, made.id, 5)
    assert (await claim(store, first.id, "ana"))["status"] == "claimed"
    assert (await claim(store, second.id, "ana"))["status"] == "limit_reached"
    # Another template's drop is another limit.
    other = await drop(store, (await template(store)).id, 5)
    assert (await claim(store, other.id, "ana"))["status"] == "claimed"
    await store.audit_ok()


async def test_a_limit_above_one_counts_across_drops(store: Store) -> None:
    made = await template(store, per_user_limit=3)
    first, second = await drop(store, made.id, 2), await drop(store, made.id, 5)
    statuses = [(await claim(store, d.id, "ana"))["status"] for d in (first, first, second)]
    assert statuses == ["claimed", "claimed", "claimed"]
    assert await claim(store, second.id, "ana") == {
        "status": "limit_reached",
        "limit": 3,
        "replayed": False,
    }
    assert [c["id"] for c in await store.coupons.wallet(store.room, "ana")] == [
        "d2.1", "d2.2", "d3.1"]  # fmt: skip
    await store.audit_ok()


async def test_the_same_request_id_gets_the_same_answer(store: Store) -> None:
    dropped = await drop(store, (await template(store)).id, 1)
    first = await claim(store, dropped.id, "ana", "tap-1")
    assert first["status"] == "claimed"
    assert await claim(store, dropped.id, "ana", "tap-1") == {**first, "replayed": True}
    # Bob's tap with the same id is his own request: the drop has run out for him.
    assert (await claim(store, dropped.id, "bob", "tap-1"))["status"] == "sold_out"
    # Ana's answer is replayed even now that the drop has run out, and costs nothing.
    assert await claim(store, dropped.id, "ana", "tap-1") == {**first, "replayed": True}
    after = await store.coupons.get_drop(store.room, dropped.id)
    assert (after.remaining, after.claimed) == (0, 1)
    assert len(await store.coupons.wallet(store.room, "ana")) == 1


async def test_a_replay_is_the_stored_answer_even_after_the_window(store: Store) -> None:
    dropped = await drop(store, (await template(store)).id, 2, claim_window_s=60)
    first = await claim(store, dropped.id, "ana", "tap-1")
    later = await claim(store, dropped.id, "ana", "tap-1", at=T0 + 120_000)
    assert later == {**first, "replayed": True}
    fresh = await claim(store, dropped.id, "bob", "tap-9", at=T0 + 120_000)
    assert fresh == {"status": "ended", "replayed": False}


async def test_one_batch_answers_many_requests_in_order(store: Store) -> None:
    dropped = await drop(store, (await template(store, per_user_limit=2)).id, 4)
    requests = [("ana", "1"), ("bob", "1"), ("ana", "1"), ("ana", "2"), ("ana", "3"),
                ("cid", "1"), ("dan", "1"), ("bob", "1")]  # fmt: skip
    answers = await store.coupons.claim_batch(
        store.room, dropped.id, [GrabRequest(u, r, 1) for u, r in requests], at_ms=T0
    )
    assert [(a.status, a.body.get("coupon"), a.replayed) for a in answers] == [
        ("claimed", "d2.1", False),
        ("claimed", "d2.2", False),
        ("claimed", "d2.1", True),
        ("claimed", "d2.3", False),
        ("limit_reached", None, False),
        ("claimed", "d2.4", False),
        ("sold_out", None, False),
        ("claimed", "d2.2", True),
    ]
    after = await store.coupons.get_drop(store.room, dropped.id)
    assert (after.remaining, after.claimed) == (0, 4)
    await store.audit_ok()


async def test_claims_through_the_batcher_are_answered_each_in_turn(store: Store) -> None:
    dropped = await live_drop(store, 3)
    answers = await asyncio.gather(
        *(store.coupons.claim(store.room, dropped.id, f"u{n}", "tap") for n in range(5))
    )
    # Two batches may be in flight at once, so who wins is not fixed; how many is.
    assert Counter(a.status for a in answers) == {"claimed": 3, "sold_out": 2}
    assert {a.body.get("coupon") for a in answers} == {"d2.1", "d2.2", "d2.3", None}
    again = await store.coupons.claim(store.room, dropped.id, "u0", "tap")
    assert (again.body, again.replayed) == (answers[0].body, True)
    assert store.coupons.batchers == {}  # an idle drop's batcher is let go


async def test_a_malformed_drop_id_is_refused_before_any_claim(store: Store) -> None:
    with pytest.raises(ProtocolError) as refused:
        await store.coupons.claim(store.room, "s1", "ana", "tap")
    assert refused.value.details == {"field": "drop"}


# ---- a coupon rain ---------------------------------------------------------------------------


async def test_a_coupon_rain_gives_out_exactly_the_drop(store: Store) -> None:
    dropped = await live_drop(store, 500)
    users = [f"viewer-{n}" for n in range(2000)]
    claims = [
        asyncio.ensure_future(store.coupons.claim(store.room, dropped.id, user, "tap"))
        for user in users
    ]
    await asyncio.sleep(0)  # every claim is queued on the drop's batcher
    batcher = store.coupons.batchers[(store.room, dropped.id)]
    answers = await asyncio.gather(*claims)
    assert batcher.batches < 100  # micro-batched, not a script call per claim

    statuses = Counter(a.status for a in answers)
    assert statuses == {"claimed": 500, "sold_out": 1500}
    winners = {u: a.body["coupon"] for u, a in zip(users, answers, strict=True)
               if a.status == "claimed"}  # fmt: skip
    assert len(set(winners.values())) == 500
    after = await store.coupons.get_drop(store.room, dropped.id)
    assert (after.remaining, after.claimed) == (0, 500)

    records = {
        text(k): orjson.loads(v)
        for k, v in (await store.shop.redis.hgetall(keys.coupons(store.room))).items()
    }
    assert {c: r["u"] for c, r in records.items()} == {c: u for u, c in winners.items()}
    assert max(Counter(r["u"] for r in records.values()).values()) == 1
    assert {(r["d"], r["s"]) for r in records.values()} == {(dropped.id, "claimed")}

    for chunk in range(0, len(users), 100):
        some = users[chunk : chunk + 100]
        wallets = await asyncio.gather(*(store.coupons.wallet(store.room, u) for u in some))
        for user, wallet in zip(some, wallets, strict=True):
            assert [c["id"] for c in wallet] == ([winners[user]] if user in winners else [])
    await store.audit_ok()


async def test_a_rain_of_repeated_taps_never_exceeds_the_per_user_limit(store: Store) -> None:
    dropped = await live_drop(store, 400, per_user_limit=2)
    users = [f"viewer-{n}" for n in range(300)]
    answers = await asyncio.gather(
        *(store.coupons.claim(store.room, dropped.id, u, f"tap-{tap}")
          for tap in range(3) for u in users)
    )  # fmt: skip
    statuses = Counter(a.status for a in answers)
    assert statuses["claimed"] == 400
    assert statuses["claimed"] + statuses["limit_reached"] + statuses["sold_out"] == 900
    holders = await store.shop.redis.hgetall(keys.coupon_holders(store.room))
    assert max(int(v) for v in holders.values()) == 2
    assert sum(int(v) for v in holders.values()) == 400
    await store.audit_ok()


# ---- records and wallets ---------------------------------------------------------------------


async def test_a_wallet_lists_the_users_coupons_in_claim_order(store: Store) -> None:
    fiver = await template(store)
    shipping = await template(store, kind="free_shipping", title="Free shipping")
    first = await drop(store, fiver.id, 5)
    second = await drop(store, shipping.id, 5)
    await claim(store, first.id, "bob")
    await claim(store, second.id, "ana", at=T0 + 5)
    await claim(store, first.id, "ana", at=T0 + 9)
    assert await store.coupons.wallet(store.room, "ana") == [
        {"id": "d4.1", "state": "claimed", "order": None, "drop": "d4", "claimed_at": T0 + 5,
         "template": shipping.to_wire()},
        {"id": "d3.2", "state": "claimed", "order": None, "drop": "d3", "claimed_at": T0 + 9,
         "template": fiver.to_wire()},
    ]  # fmt: skip
    assert [c["id"] for c in await store.coupons.wallet(store.room, "bob")] == ["d3.1"]
    assert await store.coupons.wallet(store.room, "cid") == []


async def test_unknown_and_malformed_coupon_ids(store: Store) -> None:
    with pytest.raises(NotFoundError) as missing:
        await store.coupons.record(store.room, "d2.1")
    assert missing.value.code == "coupon_not_found"
    for bad in ("d2", "2.1", "t1.1", "d2.x"):
        with pytest.raises(ProtocolError) as malformed:
            await store.coupons.record(store.room, bad)
        assert malformed.value.details == {"field": "coupon"}


# ---- a coupon's states: claimed, locked, used ------------------------------------------------


async def coupon_state(store: Store, coupon: str) -> tuple[str, str | None]:
    record = await store.coupons.record(store.room, coupon)
    return record["s"], record.get("o")


async def test_checkout_locks_a_coupon_and_cancel_gives_it_back(store: Store) -> None:
    sale = await store.sale()
    coupon = await store.coupon("ana", amount=300)
    assert await coupon_state(store, coupon) == ("claimed", None)
    order = await store.checkout("ana", [await store.reserve(sale, "ana")], [coupon])
    assert order.coupons == (coupon,)
    assert order.detail["pricing"]["discount"] == 300
    assert await coupon_state(store, coupon) == ("locked", order.id)
    [held] = await store.coupons.wallet(store.room, "ana")
    assert (held["state"], held["order"]) == ("locked", order.id)

    await store.orders.cancel(store.room, order.id, "ana", owner="ana")
    assert await coupon_state(store, coupon) == ("claimed", None)
    await store.audit_ok()
    # Back in the wallet, it can go into the next order.
    again = await store.checkout("ana", [await store.reserve(sale, "ana")], [coupon])
    assert await coupon_state(store, coupon) == ("locked", again.id)
    await store.audit_ok()


async def test_payment_uses_a_locked_coupon_for_good(store: Store) -> None:
    sale = await store.sale()
    coupon = await store.coupon("ana", amount=300)
    order = await store.checkout("ana", [await store.reserve(sale, "ana")], [coupon])
    assert (await store.pay(order))["outcome"] == "paid"
    assert (await store.orders.get(store.room, order.id)).state is OrderState.PAID
    assert await coupon_state(store, coupon) == ("used", order.id)
    assert (await store.coupons.wallet(store.room, "ana"))[0]["state"] == "used"
    with pytest.raises(ConflictError) as reused:
        await store.checkout("ana", [await store.reserve(sale, "ana")], [coupon])
    assert reused.value.code == "coupon_not_available"
    assert await coupon_state(store, coupon) == ("used", order.id)
    await store.audit_ok()


async def test_a_locked_coupon_cannot_go_into_a_second_order(store: Store) -> None:
    sale = await store.sale()
    coupon = await store.coupon("ana", amount=300)
    first = await store.checkout("ana", [await store.reserve(sale, "ana")], [coupon])
    with pytest.raises(ConflictError) as locked:
        await store.checkout("ana", [await store.reserve(sale, "ana")], [coupon])
    assert locked.value.code == "coupon_not_available"
    assert await coupon_state(store, coupon) == ("locked", first.id)


async def test_a_coupon_is_usable_only_in_its_validity_window(store: Store) -> None:
    sale = await store.sale()
    later = await store.coupon("ana", amount=300, valid_from=now_ms() + DAY_MS)
    with pytest.raises(RejectedError) as early:
        await store.checkout("ana", [await store.reserve(sale, "ana")], [later])
    assert early.value.code == "coupon_not_valid"
    assert await coupon_state(store, later) == ("claimed", None)


async def test_a_coupon_below_its_threshold_stays_claimed(store: Store) -> None:
    sale = await store.sale()  # 2500 a unit
    coupon = await store.coupon("ana", amount=300, min_spend=5000)
    with pytest.raises(RejectedError) as below:
        await store.checkout("ana", [await store.reserve(sale, "ana")], [coupon])
    assert below.value.code == "coupon_threshold_not_met"
    assert await coupon_state(store, coupon) == ("claimed", None)


async def test_a_template_past_its_validity_cannot_be_dropped(store: Store) -> None:
    made = await template(store, valid_from=T0, valid_until=T0 + 1000)
    with pytest.raises(ConflictError) as expired:
        await drop(store, made.id, 5, at=T0 + 1000)
    assert expired.value.code == "template_expired"
    assert (await drop(store, made.id, 5, at=T0 + 999)).quantity == 5
