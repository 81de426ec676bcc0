"""Comment-to-buy: comments such as `SOLD 3 2 blue` become a grab for their author.

    comment ─parse─▶ Command ─resolve (lineup, sales)─▶ Order ─grab─▶ answer
                        │                      └──▶ Reply (typo, unknown code...)
                        └ None: just a comment, no reply

Every outcome is a private `comment_buy` notice to the author (engine.store.roomlog.notify_user);
a reservation is also a public `comment_buy` entry in the room log. Parsing and
resolution are pure; `CommentToBuy` does the reads, the grab and the replies. Host and
moderator comments are never orders (they announce: "SOLD to Ana!").

A repeat of the same order (user, sale, quantity) within `REPEAT_WINDOW_MS` reuses the
first comment's grab request id (engine/features/comment_buy/lua/comment_buy_recent.lua), so it
replays that answer instead of buying again. Only a reservation holds the window: after any other
answer (sold out, not started) the next comment is a fresh attempt.

Settings are cached per room for `CONFIG_TTL_S` (every comment consults them); a change
reaches other engine processes within that time.
"""

from __future__ import annotations

import difflib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import orjson
from redis.asyncio import Redis

from engine.commerce.catalog import Catalog, Product, Sku
from engine.commerce.sales import Sale, SaleState, SaleStore
from engine.commerce.stock import GrabAnswer, GrabRequest, Stock
from engine.core.clock import now_ms
from engine.core.errors import ProtocolError, UnavailableError
from engine.core.identity import PRODUCT_ID_RE, Author
from engine.core.room_cache import RoomCache
from engine.features.comment_buy.syntax import (
    Command,
    CommentBuyConfig,
    CommentBuySettings,
    fold,
    parse_command,
)
from engine.store import keys
from engine.store.redis_client import text
from engine.store.roomlog import append_entry, notify_user

NAME = "comment_buy"  # the feature's name (engine/core/feature.py)
CONFIG_TTL_S = 1.0
REPEAT_WINDOW_MS = 15_000
NOTICE = "comment_buy"
# Spelled-out quantities get a hint to use digits (unless a variant is called that).
NUMBER_WORDS = frozenset(
    ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
)
_RANK = {SaleState.LIVE: 0, SaleState.SOLD_OUT: 1, SaleState.SCHEDULED: 2, SaleState.ENDED: 3}


@dataclass(frozen=True, slots=True)
class Reply:
    """A private answer that is not a grab's: what went wrong and how to write it."""

    status: str
    message: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Order:
    sale: Sale
    product: Product
    quantity: int


def label(sku: Sku) -> str:
    """How a variant is named in replies: its attribute values ("42 blue"), else its SKU."""
    return " ".join(sku.attrs.values()) or sku.sku


def variant_words(sku: Sku) -> set[str]:
    """Words that name this variant: its attribute keys and values, and its SKU."""
    found = {fold(sku.sku)}
    for key, value in sku.attrs.items():
        found.update(fold(key).split())
        found.update(fold(value).split())
    return found


def _find(code: str, config: CommentBuyConfig,
          lineup: Sequence[Product]) -> tuple[Product, Sku | None] | None:  # fmt: skip
    """The product (and SKU, when the code is one) a code names: a product keyword, a
    SKU, a product id, then a position in the run of show."""
    by_id = {p.id: p for p in lineup}
    keyword_product = config.product_for(code)
    if keyword_product in by_id:
        return by_id[keyword_product], None
    for product in lineup:
        for sku in product.skus:
            if fold(sku.sku) == code:
                return product, sku
    if PRODUCT_ID_RE.fullmatch(code) and code in by_id:
        return by_id[code], None
    position = re.fullmatch(r"#?(\d{1,4})", code)
    if position and 1 <= int(position.group(1)) <= len(lineup):
        return lineup[int(position.group(1)) - 1], None
    return None


def _unknown_code(command: Command, config: CommentBuyConfig,
                  lineup: Sequence[Product]) -> Reply:  # fmt: skip
    code, kw = command.code or "", command.keyword
    if not lineup:
        return Reply("unknown_code", "Nothing is on sale in this show yet.", {"code": code})
    names = [fold(k) for k in config.keywords] + [p.id for p in lineup]
    names += [fold(s.sku) for p in lineup for s in p.skus]
    close = difflib.get_close_matches(code, names, n=1, cutoff=0.7)
    hint = f" Did you mean {close[0].upper()}?" if close else ""
    return Reply(
        "unknown_code",
        f"“{code}” is not a product in this show.{hint} Comment {kw} and the product's "
        f"number from 1 to {len(lineup)}, e.g. {kw} 1.",
        {"code": code, **({"suggestion": close[0]} if close else {})},
    )


def _best_sale(sales: Sequence[Sale], sku: str, at_ms: int) -> Sale | None:
    """The SKU's sale a buyer means: live, else sold out, else upcoming, else ended;
    the newest of equals."""
    mine = [s for s in sales if s.sku == sku]
    return min(mine, key=lambda s: (_RANK[s.state(at_ms)], -s.created_at), default=None)


def _open(sale: Sale | None, at_ms: int) -> bool:
    return sale is not None and sale.state(at_ms) is not SaleState.ENDED


def _unknown_word(command: Command, product: Product, variant: list[str],
                  vocabulary: set[str], options: list[str]) -> Reply | None:  # fmt: skip
    """The reply to the first variant word no variant of the product has."""
    word = next((w for w in variant if w not in vocabulary), None)
    base = {"product": product.id}
    if word is None:
        return None
    if word in NUMBER_WORDS:
        return Reply("bad_quantity", f"Write the quantity in digits, e.g. {command.keyword} "
                     f"{command.code} 2.", base)  # fmt: skip
    return Reply("unknown_variant",
                 f"{product.title} has no “{word}”. Options: {', '.join(options)}.",
                 {**base, "options": options})  # fmt: skip


def resolve(command: Command, config: CommentBuyConfig, lineup: Sequence[Product],
            sales: Sequence[Sale], at_ms: int) -> Order | Reply:  # fmt: skip
    """What to grab for a command, or why not (pure: the caller reads lineup and sales)."""
    kw = command.keyword
    if command.code is None:
        return Reply(
            "missing_code",
            f"To buy, comment {kw} and the product's number, e.g. {kw} 1 (or {kw} 1 2 for two).",
        )
    found = _find(command.code, config, lineup)
    if found is None:
        return _unknown_code(command, config, lineup)
    product, named = found
    base = {"product": product.id}
    vocabulary: set[str] = set().union(*(variant_words(s) for s in product.skus))
    variant, quantity = list(command.variant), command.quantity
    twice = command.repeated_quantity
    if command.bare is not None and command.bare in vocabulary:
        variant.insert(0, command.bare)  # "SOLD 3 42": size 42, not 42 units
        quantity = quantity if command.marked else None
    elif command.bare is not None and command.marked:
        twice = True  # "SOLD 3 2 x2": a quantity right after the code, and a marked one
    choices = [s for s in product.skus if _open(_best_sale(sales, s.sku, at_ms), at_ms)]
    options = {"options": [label(s) for s in choices or product.skus]}
    if twice:
        return Reply("bad_quantity", f"Say the quantity once, e.g. {kw} {command.code} 2.", base)
    unknown = _unknown_word(command, product, variant, vocabulary, options["options"])
    if unknown is not None:
        return unknown
    candidates = [s for s in ([named] if named else product.skus)
                  if set(variant) <= variant_words(s)]  # fmt: skip
    if not candidates:
        return Reply(
            "unknown_variant",
            f"No {product.title} is “{' '.join(variant)}”. Options: "
            f"{', '.join(options['options'])}.",
            {**base, **options},
        )
    best = [(s, _best_sale(sales, s.sku, at_ms)) for s in candidates]
    open_ = [(s, sale) for s, sale in best if _open(sale, at_ms)]
    if len(open_) > 1:
        names = [label(s) for s, _ in open_]
        return Reply(
            "ambiguous_variant",
            f"Which {product.title}? Comment e.g. {kw} {command.code} {names[0]}. "
            f"Options: {', '.join(names)}.",
            {**base, "options": names},
        )
    if not open_:
        ended = next((sale for _, sale in best if sale), None)
        if ended:
            return Reply("ended", f"The sale of {ended.title} has ended.",
                         {**base, "sale": ended.id})  # fmt: skip
        return Reply("no_sale", f"{product.title} is not on sale right now.", base)
    sale = open_[0][1]
    assert sale is not None
    quantity = 1 if quantity is None else quantity
    if not 1 <= quantity <= sale.limit:
        per = "one" if sale.limit == 1 else f"1 to {sale.limit}"
        return Reply("bad_quantity", f"You can buy {per} of {sale.title}.",
                     {**base, "sale": sale.id, "limit": sale.limit})  # fmt: skip
    return Order(sale, product, quantity)


def answer_reply(order: Order, answer: GrabAnswer) -> Reply:
    """The private reply to a grab's answer (`replayed`: a repeat of an earlier order)."""
    sale, body = order.sale, answer.body
    data: dict[str, Any] = {"product": order.product.id, "sale": sale.id, "sku": sale.sku,
                            "title": sale.title}  # fmt: skip
    if answer.replayed:
        data["replayed"] = True
    status = answer.status
    if status == "reserved":
        fields = ("reservation", "quantity", "expires_at", "price", "currency")
        data.update({k: body[k] for k in fields})
        what = f"{body['quantity']} \u00d7 {sale.title}"
        if answer.replayed:
            return Reply(status, f"Already reserved for you: {what}.", data)
        return Reply(status, f"Reserved for you: {what}. Check out before the hold ends.", data)
    if status == "sold_out":
        return Reply(status, f"{sale.title} is sold out. Join the waitlist to get one if "
                     "units come back.", {**data, "waitlist": True})  # fmt: skip
    if status == "limit_reached":
        return Reply(status, f"You already hold {body['holding']} of {sale.title}; the limit "
                     f"is {body['limit']} per person.",
                     {**data, "limit": body["limit"], "holding": body["holding"]})  # fmt: skip
    if status == "not_started":
        return Reply(status, f"The sale of {sale.title} has not started yet; comment again "
                     "when it opens.", {**data, "starts_at": body["starts_at"]})  # fmt: skip
    if status == "ended":
        return Reply(status, f"The sale of {sale.title} has ended.", data)
    return Reply("no_sale", f"{order.product.title} is not on sale right now.", data)


class CommentToBuy:
    def __init__(self, redis: Redis, catalog: Catalog, sales: SaleStore, stock: Stock) -> None:
        self.redis = redis
        self.catalog = catalog
        self.sales = sales
        self.stock = stock
        # Its entries are sale news: written with the sales' scripts and log bound.
        self.scripts = sales.scripts
        self.log_maxlen = sales.log_maxlen
        self._configs = RoomCache(self.load_config, CONFIG_TTL_S)

    # ---- settings --------------------------------------------------------------------------

    async def load_config(self, room: str) -> CommentBuyConfig:
        raw = await self.redis.get(keys.comment_buy(room))
        if raw is None:
            return CommentBuyConfig()
        return msgspec.json.decode(raw, type=CommentBuySettings).config()

    async def save_config(self, room: str, settings: CommentBuySettings) -> CommentBuyConfig:
        config = settings.config()
        if config.keywords:
            ids = list(config.keywords.values())
            found = await self.redis.hmget(keys.products(room), ids)
            for (keyword, product), raw in zip(config.keywords.items(), found, strict=True):
                if raw is None:
                    raise ProtocolError(
                        f"keywords.{keyword}: no product {product!r} in this room",
                        code="invalid_field", details={"field": f"keywords.{keyword}"},
                    )  # fmt: skip
        await self.redis.set(keys.comment_buy(room), orjson.dumps(config.to_wire()))
        self._configs.forget(room)
        return config

    async def config(self, room: str) -> CommentBuyConfig:
        """The settings, from this process's cache when younger than CONFIG_TTL_S."""
        return await self._configs.get(room)

    # ---- comments --------------------------------------------------------------------------

    async def on_comment(self, room: str, author: Author, comment: str) -> None:
        """Called after every posted comment; answers buy comments privately."""
        if author.role.privileged:
            return
        config = await self.config(room)
        if not config.enabled:
            return
        command = parse_command(comment, config)
        if command is None:
            return
        lineup = await self.catalog.lineup(room)
        sales = await self.sales.list(room)
        decision = resolve(command, config, lineup, sales, now_ms())
        if isinstance(decision, Reply):
            await self._reply(room, author.user, decision)
        else:
            await self._reply(room, author.user, await self._order(room, author, decision))

    async def _order(self, room: str, author: Author, order: Order) -> Reply:
        sale = order.sale
        recent = keys.comment_buy_recent(room, author.user, sale.id, order.quantity)
        outcome, request_id = await self.scripts.all["comment_buy_recent"](
            self.redis, [recent], [f"cb-{secrets.token_hex(8)}", REPEAT_WINDOW_MS]
        )
        request = GrabRequest(author.user, text(request_id), order.quantity)
        try:
            answer = await self.stock.grab(room, sale.id, request)
        except UnavailableError:
            await self.redis.delete(recent)
            return Reply("unavailable", "Could not place your order just now; comment again.",
                         {"product": order.product.id, "sale": sale.id})  # fmt: skip
        if answer.status == "reserved" and not answer.replayed:
            entry = {"user": author.user, "name": author.name, "product": order.product.id,
                     "sku": sale.sku, "title": sale.title, "quantity": answer.body["quantity"],
                     "sale": sale.id}  # fmt: skip
            await append_entry(self.redis, self.scripts, room, "comment_buy", sale.id,
                               data=entry, maxlen=self.log_maxlen)  # fmt: skip
        elif answer.status != "reserved" and text(outcome) == "new":
            await self.redis.delete(recent)  # only a reservation makes a repeat a replay
        return answer_reply(order, answer)

    async def _reply(self, room: str, user: str, reply: Reply) -> None:
        await notify_user(self.redis, self.scripts, room, user, NOTICE, status=reply.status,
                          message=reply.message, **reply.data)  # fmt: skip
