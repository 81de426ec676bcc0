"""Comment-to-buy: the parser and the resolver with no I/O (lots of bad input), then end
to end through a real engine, real Redis and real WebSocket viewers."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest

from clients import HostClient, LivecartClientError, ViewerClient
from engine.commerce.catalog import Product, Sku
from engine.commerce.sales import Sale
from engine.commerce.stock import GrabAnswer
from engine.features.comment_buy.store import CONFIG_TTL_S, Order, Reply, answer_reply, resolve
from engine.features.comment_buy.syntax import (
    Command,
    CommentBuyConfig,
    CommentBuySettings,
    parse_command,
    words,
)
from engine.server.app import Engine
from tests.conftest import EngineFactory, ViewerFactory, token

CONFIG = CommentBuyConfig(enabled=True, keyword="SOLD", keywords={"MUG": "p3"})
T0 = 1_900_000_000_000


def parse(text: str, config: CommentBuyConfig = CONFIG) -> Command | None:
    return parse_command(text, config)


def parse_config(body: Any) -> CommentBuyConfig:
    """Settings from a host's body that has the right types (the route's decoding checks
    those: test_bad_config_is_invalid_field)."""
    return msgspec.convert(body, CommentBuySettings).config()


# ---- parsing --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "code", "quantity", "variant"),
    [
        ("SOLD 3", "3", None, ()),
        ("sold 3", "3", None, ()),
        ("Sold #3", "#3", None, ()),
        ("SOLD 3 2", "3", 2, ()),
        ("SOLD 3 2 blue", "3", 2, ("blue",)),
        ("SOLD 3 42 blue", "3", 42, ("blue",)),  # 42 may be a size: the resolver decides
        ("SOLD p3 1 navy blue", "p3", 1, ("navy", "blue")),
        ("SOLD SNK-42-BLU", "snk-42-blu", None, ()),
        ("SOLD 3 x2 42", "3", 2, ("42",)),
        ("SOLD 3 42 2x", "3", 2, ()),  # 42 right after the code: a size, or a second quantity
        ("SOLD 3 \u00d72", "3", 2, ()),
        ("sold3", "3", None, ()),
        ("sold#3 2", "#3", 2, ()),
        ("   SOLD    3     2   ", "3", 2, ()),
        ("SOLD\t3\n2", "3", 2, ()),
        ("\uff33\uff2f\uff2c\uff24\u3000\uff13\u3000\uff12", "3", 2, ()),  # full-width
        ("SOLD 3\uff0c2\uff0cblue", "3", 2, ("blue",)),  # full-width commas
        ("SOLD 3\u30012\u3001blue", "3", 2, ("blue",)),  # ideographic commas
        ("SOLD 3/M", "3", None, ("m",)),
        ("SOLD 3!", "3", None, ()),
        ("SOLD 3 (M)", "3", None, ("m",)),
        ("\U0001f525 SOLD 3 \U0001f525\U0001f525", "3", None, ()),
        ("SOLD 3 \U0001f44d\U0001f3fd", "3", None, ()),
        ("SO\u200bLD 3", "3", None, ()),  # a zero-width space is dropped
        ("MUG", "mug", None, ()),
        ("mug 2 blue", "mug", 2, ("blue",)),
        ("SOLD mug 2", "mug", 2, ()),
        ("SOLD 3 two", "3", None, ("two",)),
        ("SOLD 3 2.5", "3", None, ("2.5",)),
        ("SOLD \u0663 \u0662", "3", 2, ()),  # Arabic-Indic digits
        ("sold\u0663", "3", None, ()),
        ("SOLD #\u0969 x\u0968", "#3", 2, ()),  # Devanagari
        ("SOLD 3 \u0664\u0662 blue", "3", 42, ("blue",)),
    ],
)
def test_buy_comments_parse(
    text: str, code: str, quantity: int | None, variant: tuple[str, ...]
) -> None:
    command = parse(text)
    assert command is not None
    assert (command.code, command.quantity, command.variant) == (code, quantity, variant)
    assert command.keyword == "SOLD"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "\U0001f525\U0001f525",
        "love it",
        "is it SOLD 3?",  # the keyword must come first
        "soldier 3",
        "soldout",
        "sold-3",
        "mugs 2",
        "sold " + "and gone " * 10,  # a sentence, not an order
        "SOLD 3 " + "x " * 200,
    ],
)
def test_other_comments_are_chat(text: str) -> None:
    assert parse(text) is None


def test_the_room_keyword_replaces_sold() -> None:
    config = CommentBuyConfig(enabled=True, keyword="Buy")
    assert parse("SOLD 3", config) is None
    command = parse("BUY 3 2", config)
    assert command is not None
    assert (command.code, command.quantity, command.keyword) == ("3", 2, "Buy")


@pytest.mark.parametrize(
    ("text", "quantity"),
    [("SOLD 3 0", 0), ("SOLD 3 -1", -1), ("SOLD 3 999", 999), ("SOLD 3 x0", 0),
     ("SOLD 3 " + "9" * 40, 10**9)],
)  # fmt: skip
def test_out_of_range_quantities_are_kept_for_the_resolver(text: str, quantity: int) -> None:
    command = parse(text)
    assert command is not None
    assert command.quantity == quantity


def test_keyword_alone_and_two_quantities() -> None:
    assert parse("SOLD") == Command(code=None)
    assert parse("sold!!") == Command(code=None)
    twice = parse("SOLD 3 x2 x3")
    assert twice is not None
    assert twice.repeated_quantity


def test_words_fold_and_trim() -> None:
    assert words("  \uff22\uff4c\uff55\uff45, «Navy»  ") == ["blue", "navy"]
    assert words("\u202eSOLD 3") == ["sold", "3"]  # a bidi override is dropped
    # Decimal digits of any script are ASCII digits: a size "٤٢" is the size "42".
    assert words("\u0661\u0662 \u096a\u0968 \u0e53 1\u0663") == ["12", "42", "3", "13"]


def test_a_bare_number_and_a_marker_are_both_kept() -> None:
    """`SOLD 3 2 x2`: a number right after the code and a marked quantity; the resolver
    decides whether the number is a size or the quantity given twice."""
    command = parse("SOLD 3 2 x2")
    assert command is not None
    assert (command.bare, command.quantity, command.marked, command.variant) == ("2", 2, True, ())


# ---- settings -------------------------------------------------------------------------------


def test_config_defaults_and_round_trip() -> None:
    assert parse_config({}) == CommentBuyConfig()
    assert CommentBuyConfig().to_wire() == {"enabled": False, "keyword": "SOLD", "keywords": {}}
    body = {
        "enabled": True,
        "keyword": " Buy ",
        "keywords": {"MUG": "p3", "\uff34\uff45\uff45": "p1"},
    }
    config = parse_config(body)
    assert config.to_wire() == {"enabled": True, "keyword": "Buy",
                                "keywords": {"MUG": "p3", "Tee": "p1"}}  # fmt: skip
    assert parse_config(config.to_wire()) == config
    assert config.product_for("tee") == "p1"
    assert config.product_for("shirt") is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"enabled": "yes"}, "enabled"),
        ({"enabled": 1}, "enabled"),
        ({"keyword": ""}, "keyword"),
        ({"keyword": "two words"}, "keyword"),
        ({"keyword": "42"}, "keyword"),
        ({"keyword": "x" * 41}, "keyword"),
        ({"keyword": "SOLD!"}, "keyword"),
        ({"keyword": 7}, "keyword"),
        ({"keywords": ["MUG"]}, "keywords"),
        ({"keywords": {f"k{n}": "p1" for n in range(51)}}, "keywords"),
        ({"keywords": {"MUG": "3"}}, "keywords.MUG"),
        ({"keywords": {"MUG": "p3", "mug": "p4"}}, "keywords.mug"),
        ({"keywords": {"sold": "p3"}}, "keywords.sold"),
        ({"keywords": {"": "p3"}}, "keywords."),
        ({"colour": "red"}, "colour"),
    ],
)
async def test_bad_config_is_invalid_field(
    host: HostClient, room: str, body: dict[str, Any], field: str
) -> None:
    with pytest.raises(LivecartClientError) as error:
        await host.call("PUT", f"/api/rooms/{room}/comment-to-buy", body)
    assert (error.value.status, error.value.code) == (400, "invalid_field")
    assert error.value.details == {"field": field}


async def test_config_must_be_an_object(host: HostClient, room: str) -> None:
    with pytest.raises(LivecartClientError) as error:
        await host.call("PUT", f"/api/rooms/{room}/comment-to-buy", [])
    assert (error.value.status, error.value.code) == (400, "bad_request")


# ---- resolving ------------------------------------------------------------------------------

JACKET = Product("p1", "Denim jacket", "USD", (Sku("DJ-S", 4900, {"size": "S"}),
                                              Sku("DJ-M", 5200, {"size": "M"})))  # fmt: skip
SNEAKER = Product("p2", "Canvas sneaker", "USD", (
    Sku("SNK-41-BLU", 9900, {"size": "41", "colour": "blue"}),
    Sku("SNK-42-BLU", 9900, {"size": "42", "colour": "blue"}),
    Sku("SNK-42-RED", 9900, {"size": "42", "colour": "navy red"}),
))  # fmt: skip
MUG = Product("p3", "Mug", "EUR", (Sku("MUG-1", 1500),))
LINEUP = [JACKET, SNEAKER, MUG]


def sale(sale_id: str, sku: str, *, limit: int = 3, available: int = 5, starts: int = T0 - 1000,
         ends: int = T0 + 60_000, created: int = T0 - 2000) -> Sale:  # fmt: skip
    product = next(p for p in LINEUP if p.sku(sku))
    return Sale(
        id=sale_id, sku=sku, product=product.id, title=f"{product.title} ({sku})", price=100,
        currency=product.currency, limit=limit, hold_ms=300_000, allotment=5, topups=0,
        available=available, reserved=5 - available, sold=0, created_at=created,
        starts_at=starts, ends_at=ends,
    )  # fmt: skip


SALES = [sale("s1", "DJ-M"), sale("s2", "SNK-41-BLU"), sale("s3", "SNK-42-BLU"),
         sale("s4", "SNK-42-RED"), sale("s5", "MUG-1", limit=1)]  # fmt: skip


def decide(text: str, sales: list[Sale] | None = None) -> Order | Reply:
    command = parse(text)
    assert command is not None
    return resolve(command, CONFIG, LINEUP, SALES if sales is None else sales, T0)


def order_of(text: str, sales: list[Sale] | None = None) -> tuple[str, int]:
    decision = decide(text, sales)
    assert isinstance(decision, Order), decision
    return decision.sale.id, decision.quantity


def reply_of(text: str, sales: list[Sale] | None = None) -> Reply:
    decision = decide(text, sales)
    assert isinstance(decision, Reply), decision
    assert decision.message
    return decision


@pytest.mark.parametrize(
    ("text", "sale_id", "quantity"),
    [
        ("SOLD 1", "s1", 1),  # one jacket size on sale: no need to name it
        ("SOLD #1 2", "s1", 2),
        ("SOLD p1 M", "s1", 1),
        ("SOLD DJ-M 3", "s1", 3),
        ("sold dj-m", "s1", 1),
        ("SOLD 2 41", "s2", 1),  # 41 is a size here, not 41 units
        ("SOLD 2 x2 41", "s2", 2),
        ("SOLD 2 2 41 blue", "s2", 2),
        ("SOLD 2 42 navy", "s4", 1),
        ("SOLD 2 size 42 colour red", "s4", 1),
        ("SOLD 2 42 blue x3", "s3", 3),
        ("SOLD 2 41 x2", "s2", 2),  # 41 right after the code is a size: x2 is the quantity
        ("SOLD 2 \u0664\u0661", "s2", 1),  # the size 41 in Arabic-Indic digits
        ("SOLD \u0662 x\u0662 \u0664\u0661 blue", "s2", 2),
        ("SOLD SNK-42-RED", "s4", 1),
        ("MUG", "s5", 1),
        ("mug 1", "s5", 1),
        ("SOLD mug", "s5", 1),
        ("SOLD 3", "s5", 1),
        ("\uff33\uff2f\uff2c\uff24\u3000\uff12\u3000\uff14\uff11", "s2", 1),
    ],
)
def test_orders_resolve_to_a_sale(text: str, sale_id: str, quantity: int) -> None:
    assert order_of(text) == (sale_id, quantity)


@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("SOLD", "missing_code"),
        ("SOLD 9", "unknown_code"),
        ("SOLD 0", "unknown_code"),
        ("SOLD -1", "unknown_code"),
        ("SOLD p9", "unknown_code"),
        ("SOLD abc", "unknown_code"),
        ("sold out?", "unknown_code"),
        ("SOLD 1 0", "bad_quantity"),
        ("SOLD 1 -1", "bad_quantity"),
        ("SOLD 1 4", "bad_quantity"),  # above the sale's per-user limit of 3
        ("SOLD 1 999", "bad_quantity"),
        ("SOLD 1 " + "9" * 30, "bad_quantity"),
        ("SOLD 1 two", "bad_quantity"),
        ("SOLD 1 x2 x2", "bad_quantity"),
        ("SOLD 1 2 x2", "bad_quantity"),  # the quantity given twice (not a variant "2")
        ("SOLD 3 1 1x", "bad_quantity"),
        ("SOLD 2 43 red x2", "bad_quantity"),  # 43 is no size: a quantity, and x2 another
        ("MUG 2", "bad_quantity"),  # limit 1
        ("SOLD 1 XL", "unknown_variant"),
        ("SOLD 1 M please", "unknown_variant"),
        ("SOLD 2 43 red", "bad_quantity"),  # not a size: 43 units
        ("SOLD 2 blue red", "unknown_variant"),  # no such variant
        ("SOLD 2", "ambiguous_variant"),
        ("SOLD 2 42", "ambiguous_variant"),
        ("SOLD 2 blue", "ambiguous_variant"),
        ("SOLD 1 S", "no_sale"),  # the S is not on sale
    ],
)
def test_mistakes_get_a_reply(text: str, status: str) -> None:
    assert reply_of(text).status == status


def test_replies_say_what_to_write() -> None:
    unknown = reply_of("SOLD 9")
    assert "9" in unknown.message
    assert "1 to 3" in unknown.message
    assert unknown.data == {"code": "9"}
    typo = reply_of("SOLD mugg")
    assert "MUG" in typo.message
    assert typo.data == {"code": "mugg", "suggestion": "mug"}
    assert reply_of("SOLD djm").data["suggestion"] == "dj-m"
    ambiguous = reply_of("SOLD 2 42")
    assert ambiguous.data == {"product": "p2", "options": ["42 blue", "42 navy red"]}
    assert "SOLD 2 42 blue" in ambiguous.message
    variant = reply_of("SOLD 1 XL")
    assert "XL".casefold() in variant.message
    assert variant.data["options"] == ["M"]
    quantity = reply_of("SOLD 1 4")
    assert quantity.data == {"product": "p1", "sale": "s1", "limit": 3}
    assert "1 to 3" in quantity.message
    assert "digits" in reply_of("SOLD 1 two").message
    assert "SOLD 1" in reply_of("SOLD").message


def test_unknown_code_in_an_empty_show() -> None:
    command = parse("SOLD 1")
    assert command is not None
    reply = resolve(command, CONFIG, [], [], T0)
    assert isinstance(reply, Reply)
    assert (reply.status, reply.message) == ("unknown_code", "Nothing is on sale in this show yet.")


def test_the_sale_a_buyer_means() -> None:
    ended = sale("s7", "DJ-M", ends=T0 - 1)
    upcoming = sale("s8", "DJ-M", starts=T0 + 5000, created=T0 - 10)
    sold_out = sale("s9", "DJ-M", available=0)
    assert order_of("SOLD 1", [ended, upcoming])[0] == "s8"  # upcoming beats ended
    assert order_of("SOLD 1", [ended, upcoming, sold_out])[0] == "s9"  # sold out: waitlist
    assert order_of("SOLD 1", [sold_out, sale("s1", "DJ-M")])[0] == "s1"  # live beats all
    over = reply_of("SOLD 1", [ended])
    assert (over.status, over.data) == ("ended", {"product": "p1", "sale": "s7"})
    assert reply_of("SOLD 1", []).status == "no_sale"
    # An ended sale of one size does not make "which size?" ambiguous.
    both = [sale("s1", "DJ-M"), sale("s6", "DJ-S", ends=T0 - 1)]
    assert order_of("SOLD 1", both)[0] == "s1"


def test_grab_answers_become_replies() -> None:
    order = Order(sale("s1", "DJ-M"), JACKET, 2)
    reserved = {"status": "reserved", "reservation": "s1.7", "quantity": 2,
                "expires_at": T0 + 300_000, "price": 100, "currency": "USD"}  # fmt: skip
    reply = answer_reply(order, GrabAnswer(reserved, replayed=False))
    assert reply.status == "reserved"
    assert reply.data == {"product": "p1", "sale": "s1", "sku": "DJ-M",
                          "title": "Denim jacket (DJ-M)", "reservation": "s1.7", "quantity": 2,
                          "expires_at": T0 + 300_000, "price": 100, "currency": "USD"}  # fmt: skip
    again = answer_reply(order, GrabAnswer(reserved, replayed=True))
    assert again.data["replayed"] is True
    assert again.message.startswith("Already")
    sold_out = answer_reply(order, GrabAnswer({"status": "sold_out", "available": 0}, False))
    assert (sold_out.status, sold_out.data["waitlist"]) == ("sold_out", True)
    limit = answer_reply(order, GrabAnswer({"status": "limit_reached", "limit": 3,
                                            "holding": 2}, False))  # fmt: skip
    assert (limit.data["limit"], limit.data["holding"]) == (3, 2)
    early = answer_reply(order, GrabAnswer({"status": "not_started", "starts_at": T0}, False))
    assert early.data["starts_at"] == T0
    assert answer_reply(order, GrabAnswer({"status": "ended"}, False)).status == "ended"
    gone = answer_reply(order, GrabAnswer({"status": "sale_not_found"}, False))
    assert gone.status == "no_sale"


# ---- end to end -----------------------------------------------------------------------------


def is_buy_notice(event: dict[str, Any]) -> bool:
    return event.get("type") == "notice" and event.get("kind") == "comment_buy"


def buy_entries(event: dict[str, Any]) -> list[dict[str, Any]]:
    if event.get("type") != "tick":
        return []
    return [e for e in event.get("entries", []) if e["kind"] == "comment_buy"]


async def settle(viewer: ViewerClient, marker: str) -> list[dict[str, Any]]:
    """Post `marker` and return the events before its tick: anything the engine sent this
    viewer about its earlier comments arrives first (same bus, handled in order)."""
    await viewer.comment(marker)
    seen: list[dict[str, Any]] = []
    while True:
        event = await viewer.next_event()
        if event.get("type") == "tick" and any(
            e.get("text") == marker for e in event.get("entries", [])
        ):
            return seen
        seen.append(event)


async def configure(host: HostClient, room: str, **body: Any) -> dict[str, Any]:
    result: dict[str, Any] = await host.call("PUT", f"/api/rooms/{room}/comment-to-buy", body)
    return result


@pytest.fixture
async def shop(host: HostClient, room: str) -> HostClient:
    """The room's host with products p1 (jacket, S/M), p2 (mug), comment-to-buy on (MUG is
    p2) and a sale s1 of the jacket in M (3 units, 2 per user); no comment rate limit."""
    await host.update_room(settings={"comment_rate_max": 0})
    await host.create_product("Denim jacket", "USD", [
        {"sku": "DJ-S", "list_price": 4900, "attrs": {"size": "S"}},
        {"sku": "DJ-M", "list_price": 5200, "attrs": {"size": "M"}},
    ])  # fmt: skip
    await host.create_product("Mug", "EUR", [{"sku": "MUG-1", "list_price": 1500}])
    await configure(host, room, enabled=True, keywords={"MUG": "p2"})
    await host.launch_sale("DJ-M", 3, per_user_limit=2)
    return host


async def test_sold_comment_reserves_and_the_room_sees_it(
    shop: HostClient, room: str, viewer_factory: ViewerFactory
) -> None:
    buyer = await viewer_factory(room, user="ana")
    watcher = await viewer_factory(room, user="ben")
    await buyer.comment("SOLD 1 2")
    notice = await buyer.wait_for(is_buy_notice)
    assert notice["status"] == "reserved", notice
    assert notice["user"] == "ana"
    assert notice["reservation"].startswith("s1.")
    assert (notice["quantity"], notice["price"], notice["currency"]) == (2, 5200, "USD")
    assert notice["sale"] == "s1"
    assert notice["product"] == "p1"
    assert notice["expires_at"] > 0
    assert "Denim jacket (M)" in notice["message"]
    tick = await watcher.wait_for(lambda e: bool(buy_entries(e)))
    [entry] = buy_entries(tick)
    assert entry["ref"] == "s1"
    assert {k: entry[k] for k in ("user", "product", "sku", "title", "quantity", "sale")} == {
        "user": "ana", "product": "p1", "sku": "DJ-M", "title": "Denim jacket (M)",
        "quantity": 2, "sale": "s1",
    }  # fmt: skip
    assert isinstance(entry["name"], str)
    assert not any(is_buy_notice(e) for e in await settle(watcher, "nice"))  # private
    sale = await shop.sale("s1")
    assert (sale["available"], sale["reserved"]) == (1, 2)
    # The log holds the comment, then its confirmation.
    log = (await shop.comments(since="0-0"))["entries"]
    kinds = [(e["kind"], e.get("text")) for e in log if e["kind"] in {"comment", "comment_buy"}]
    assert kinds[:2] == [("comment", "SOLD 1 2"), ("comment_buy", None)]


async def test_product_keyword_and_a_waitlist_when_sold_out(
    shop: HostClient, room: str, viewer_factory: ViewerFactory
) -> None:
    await shop.launch_sale("MUG-1", 1)  # s2
    first = await viewer_factory(room, user="ana")
    late = await viewer_factory(room, user="cy")
    await first.comment("mug")
    assert (await first.wait_for(is_buy_notice))["status"] == "reserved"
    await late.comment("MUG!")
    notice = await late.wait_for(is_buy_notice)
    assert (notice["status"], notice["waitlist"], notice["sale"]) == ("sold_out", True, "s2")
    assert await late.join_waitlist(notice["sale"]) == 1


async def test_mistakes_get_a_private_reply_and_the_room_goes_on(
    shop: HostClient, room: str, viewer_factory: ViewerFactory
) -> None:
    buyer = await viewer_factory(room, user="ana")
    watcher = await viewer_factory(room, user="ben")
    for text, status in [("SOLD 7", "unknown_code"), ("SOLD 1 XL", "unknown_variant"),
                         ("SOLD 1 9", "bad_quantity"), ("SOLD 1 S", "no_sale"),
                         ("SOLD", "missing_code")]:  # fmt: skip
        entry = await buyer.comment(text)
        assert entry["text"] == text
        notice = await buyer.wait_for(is_buy_notice)
        assert notice["status"] == status, notice
        assert notice["message"]
    seen = await settle(watcher, "still here")
    assert not any(is_buy_notice(e) or e.get("type") == "error" for e in seen)
    assert not any(buy_entries(e) for e in seen)
    # The buyer's connection still works, for chat and for buying.
    assert (await buyer.comment("ok then"))["text"] == "ok then"
    await buyer.comment("SOLD 1")
    assert (await buyer.wait_for(is_buy_notice))["status"] == "reserved"


async def test_a_repeated_comment_does_not_buy_twice(
    shop: HostClient, room: str, viewer_factory: ViewerFactory
) -> None:
    buyer = await viewer_factory(room, user="ana")
    await buyer.comment("SOLD 1")
    first = await buyer.wait_for(is_buy_notice)
    await buyer.comment("sold #1")  # the same order, written differently
    again = await buyer.wait_for(is_buy_notice)
    assert first["status"] == again["status"] == "reserved"
    assert again["reservation"] == first["reservation"]
    assert again["replayed"] is True
    assert "replayed" not in first
    assert (await shop.sale("s1"))["reserved"] == 1  # the limit (2) would allow another
    watcher = await viewer_factory(room, user="ben")
    # The first order's feed entry may still be on its way to a viewer who joined since.
    await settle(watcher, "joined")
    await buyer.comment("SOLD 1 1")  # the same again
    assert (await buyer.wait_for(is_buy_notice))["replayed"] is True
    assert not any(buy_entries(e) for e in await settle(watcher, "one entry only"))
    await buyer.comment("SOLD 1 x1 M")
    assert (await buyer.wait_for(is_buy_notice))["replayed"] is True
    await buyer.comment("SOLD 1 2")  # a different quantity is a new order: over the limit
    assert (await buyer.wait_for(is_buy_notice))["status"] == "limit_reached"


async def test_only_a_reservation_makes_a_repeat_a_replay(
    shop: HostClient, room: str, viewer_factory: ViewerFactory
) -> None:
    hoarder = await viewer_factory(room, user="ana")
    buyer = await viewer_factory(room, user="ben")
    await hoarder.grab("s1", 2)
    await buyer.comment("SOLD 1 2")
    assert (await buyer.wait_for(is_buy_notice))["status"] == "sold_out"  # 1 left
    await shop.top_up("s1", 1)
    await buyer.comment("SOLD 1 2")
    notice = await buyer.wait_for(is_buy_notice)
    assert notice["status"] == "reserved"
    assert "replayed" not in notice


async def test_disabled_or_host_comments_do_nothing(
    shop: HostClient, room: str, viewer_factory: ViewerFactory
) -> None:
    seat = await viewer_factory(room, "host", user="host-1")
    await seat.comment("SOLD 1 to Ana!")
    assert not any(is_buy_notice(e) for e in await settle(seat, "host done"))
    await configure(shop, room, enabled=False, keywords={"MUG": "p2"})
    buyer = await viewer_factory(room, user="ana")
    await buyer.comment("SOLD 1")
    await buyer.comment("SOLD 99")
    assert not any(is_buy_notice(e) for e in await settle(buyer, "nothing happened"))
    sale = await shop.sale("s1")
    assert (sale["available"], sale["reserved"]) == (3, 0)


# ---- the settings API -----------------------------------------------------------------------


async def test_settings_default_save_and_validate(
    engine: Engine, host: HostClient, room: str
) -> None:
    path = f"/api/rooms/{room}/comment-to-buy"
    assert await host.call("GET", path) == {"enabled": False, "keyword": "SOLD", "keywords": {}}
    await host.create_product("Mug", "EUR", [{"sku": "MUG-1", "list_price": 1500}])
    body = {"enabled": True, "keyword": "buy", "keywords": {"Mug": "p1"}}
    assert await host.call("PUT", path, body) == body
    assert await host.call("GET", path) == body
    assert await host.call("PUT", path, {"enabled": True}) == {
        "enabled": True, "keyword": "SOLD", "keywords": {}}  # fmt: skip
    for bad, field in [({"keywords": {"CUP": "p9"}}, "keywords.CUP"),
                       ({"keyword": "SOLD IT"}, "keyword"), ({"on": True}, "on")]:  # fmt: skip
        with pytest.raises(LivecartClientError) as error:
            await host.call("PUT", path, bad)
        assert (error.value.status, error.value.code) == (400, "invalid_field")
        assert error.value.details == {"field": field}
    assert (await host.call("GET", path))["keyword"] == "SOLD"  # unchanged by refusals


async def test_other_processes_see_a_change_within_the_cache_ttl(
    engine_factory: EngineFactory, engine: Engine, host: HostClient, room: str
) -> None:
    other = await engine_factory()
    assert other.node is not None
    assert not (await other.node.service("comment_buy").config(room)).enabled  # now cached there
    await configure(host, room, enabled=True)
    assert not (await other.node.service("comment_buy").config(room)).enabled
    await asyncio.sleep(CONFIG_TTL_S)  # the point: the cached copy's TTL runs out
    assert (await other.node.service("comment_buy").config(room)).enabled


async def test_settings_are_for_the_host_only(engine: Engine, room: str) -> None:
    path = f"/api/rooms/{room}/comment-to-buy"
    for role in ("viewer", "moderator"):
        async with HostClient(engine.base_url, room, token(room, role)) as client:
            for method, body in (("GET", None), ("PUT", {"enabled": True})):
                with pytest.raises(LivecartClientError) as error:
                    await client.call(method, path, body)
                assert (error.value.status, error.value.code) == (403, "forbidden")
    async with HostClient(engine.base_url, "r-nope", token("r-nope", "host", "h")) as client:
        with pytest.raises(LivecartClientError) as error:
            await client.call("GET", "/api/rooms/r-nope/comment-to-buy")
        assert error.value.code == "room_not_found"
