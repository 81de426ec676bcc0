"""`HostClient`: the host's (or a moderator's) side: the HTTP API plus a realtime seat.

async with HostClient("http://127.0.0.1:8000", "demo", host_token) as host:
    await host.create_room(title="Friday drop")
    await host.go_live()
    seat = await host.watch()                 # a ViewerClient with the host's token
    await seat.comment("Welcome everyone!")   # never sampled out
    await host.open_giveaway("Lucky bag", "1 mystery bag", winners=3, duration_s=120)
    auction = await host.open_auction("LB-42", start_price=5000, duration_s=60)
    await host.set_comment_to_buy(enabled=True, keyword="SOLD", keywords={"MUG": "p3"})
    deal = await host.open_group_buy("MUG-1", 990, team_size=3, window_s=600, units=30)
    print(await host.referrals(), await host.reminder_count())
"""

from __future__ import annotations

from typing import Any

from clients.api import ApiClient
from clients.viewer import ViewerClient


class HostClient(ApiClient):
    # ---- rooms ----------------------------------------------------------------------------

    async def create_room(self, title: str, **fields: Any) -> dict[str, Any]:
        result: dict[str, Any] = await self.call(
            "POST", "/api/rooms", {"id": self.room, "title": title, **fields}
        )
        return result

    async def get_room(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("GET", self._room)
        return result

    async def update_room(self, **fields: Any) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("PATCH", self._room, fields)
        return result

    async def go_live(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("POST", f"{self._room}/go-live")
        return result

    async def end(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("POST", f"{self._room}/end")
        return result

    async def mint_token(self, user: str, role: str = "viewer", **fields: Any) -> str:
        result = await self.call(
            "POST", f"{self._room}/tokens", {"user": user, "role": role, **fields}
        )
        token: str = result["token"]
        return token

    # ---- catalog and sales -----------------------------------------------------------------

    async def create_product(self, title: str, currency: str, skus: list[dict[str, Any]],
                             **fields: Any) -> dict[str, Any]:  # fmt: skip
        body = {"title": title, "currency": currency, "skus": skus, **fields}
        result: dict[str, Any] = await self.call("POST", f"{self._room}/products", body)
        return result

    async def update_product(self, product_id: str, **fields: Any) -> dict[str, Any]:
        result: dict[str, Any] = await self.call(
            "PATCH", f"{self._room}/products/{product_id}", fields
        )
        return result

    async def upload_image(self, data: bytes, content_type: str) -> str:
        """Store a product picture (PNG, JPEG, WebP or GIF, up to 5 MiB): its URL, to name
        in a product's `images` (docs/api.md § Product images)."""
        stored = await self.call("POST", f"{self._room}/images", data, content_type=content_type)
        url: str = stored["url"]
        return url

    async def products(self) -> list[dict[str, Any]]:
        result = await self.call("GET", f"{self._room}/products")
        products: list[dict[str, Any]] = result["products"]
        return products

    async def reorder(self, product_ids: list[str]) -> None:
        await self.call("PUT", f"{self._room}/lineup", {"products": product_ids})

    async def pin_product(self, product_id: str) -> None:
        await self.call("PUT", f"{self._room}/pinned-product", {"product_id": product_id})

    async def unpin_product(self) -> None:
        await self.call("DELETE", f"{self._room}/pinned-product")

    async def launch_sale(self, sku: str, allotment: int, **terms: Any) -> dict[str, Any]:
        """Terms: price, per_user_limit, countdown_s, duration_s, hold_s."""
        body = {"sku": sku, "allotment": allotment, **terms}
        result: dict[str, Any] = await self.call("POST", f"{self._room}/sales", body)
        return result

    async def sale(self, sale_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("GET", f"{self._room}/sales/{sale_id}")
        return result

    async def sales(self) -> list[dict[str, Any]]:
        result = await self.call("GET", f"{self._room}/sales")
        sales: list[dict[str, Any]] = result["sales"]
        return sales

    async def stop_sale(self, sale_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("POST", f"{self._room}/sales/{sale_id}/stop")
        return result

    async def top_up(self, sale_id: str, units: int) -> dict[str, Any]:
        path = f"{self._room}/sales/{sale_id}/topup"
        result: dict[str, Any] = await self.call("POST", path, {"units": units})
        return result

    async def extend(self, sale_id: str, seconds: int) -> dict[str, Any]:
        path = f"{self._room}/sales/{sale_id}/extend"
        result: dict[str, Any] = await self.call("POST", path, {"seconds": seconds})
        return result

    # ---- coupons --------------------------------------------------------------------------

    async def create_coupon(self, kind: str, title: str, total: int, currency: str,
                            **terms: Any) -> dict[str, Any]:  # fmt: skip
        """Terms: amount / percent, cap, min_spend, skus, valid_from, valid_until,
        per_user_limit, stackable."""
        body = {"kind": kind, "title": title, "total": total, "currency": currency, **terms}
        result: dict[str, Any] = await self.call("POST", f"{self._room}/coupons/templates", body)
        return result

    async def coupon_templates(self) -> list[dict[str, Any]]:
        result = await self.call("GET", f"{self._room}/coupons/templates")
        templates: list[dict[str, Any]] = result["templates"]
        return templates

    async def drop_coupons(self, template: str, quantity: int, **terms: Any) -> dict[str, Any]:
        """Terms: countdown_s, claim_window_s, tiers (the customer tiers that may claim,
        e.g. ["champions", "loyal"]; the engine needs its ledger for them)."""
        path = f"{self._room}/coupons/templates/{template}/drops"
        result: dict[str, Any] = await self.call("POST", path, {"quantity": quantity, **terms})
        return result

    async def drops(self) -> list[dict[str, Any]]:
        result = await self.call("GET", f"{self._room}/coupons/drops")
        drops: list[dict[str, Any]] = result["drops"]
        return drops

    # ---- customers (docs/api.md § Customers; the engine needs its ledger) ---------------------

    async def customers(self, **query: Any) -> dict[str, Any]:
        """The shop's customers: tier counts and profiles. Query: tier, limit, as_of."""
        params = {k: str(v) for k, v in query.items() if v is not None}
        result: dict[str, Any] = await self.call("GET", f"{self._room}/customers", params=params)
        return result

    async def customer(self, user: str, **query: Any) -> dict[str, Any]:
        """One customer's profile, with their orders and shows. Query: as_of."""
        params = {k: str(v) for k, v in query.items() if v is not None}
        path = f"{self._room}/customers/{user}"
        result: dict[str, Any] = await self.call("GET", path, params=params)
        return result

    # ---- giveaways, auctions, comment-to-buy (docs/api.md) ------------------------------------

    async def open_giveaway(self, title: str, prize: str, winners: int = 1,
                            **terms: Any) -> dict[str, Any]:  # fmt: skip
        """Terms: duration_s, rule ("any" | "keyword" | "watch"), keyword, min_watch_s,
        prize_kind ("label" | "product" | "coupon"), sku, template, one_win_per_show,
        exclude_recent_winners."""
        body = {"title": title, "prize": prize, "winners": winners, **terms}
        result: dict[str, Any] = await self.call("POST", f"{self._room}/giveaways", body)
        return result

    # ---- live polls (docs/polls.md) --------------------------------------------------------

    async def open_poll(self, question: str, options: list[str], *, duration_s: int = 60,
                        changeable: bool = False) -> dict[str, Any]:  # fmt: skip
        body = {"question": question, "options": options, "duration_s": duration_s,
                "changeable": changeable}  # fmt: skip
        result: dict[str, Any] = await self.call("POST", f"{self._room}/polls", body)
        return result

    async def close_poll(self, poll: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("POST", f"{self._room}/polls/{poll}/close")
        return result

    async def polls(self) -> list[dict[str, Any]]:
        """The room's polls, newest first, each with its counts."""
        result = await self.call("GET", f"{self._room}/polls")
        polls: list[dict[str, Any]] = result["polls"]
        return polls

    async def giveaway(self, giveaway: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("GET", f"{self._room}/giveaways/{giveaway}")
        return result

    async def giveaways(self) -> list[dict[str, Any]]:
        result = await self.call("GET", f"{self._room}/giveaways")
        giveaways: list[dict[str, Any]] = result["giveaways"]
        return giveaways

    async def close_giveaway(self, giveaway: str) -> dict[str, Any]:
        """Draw now; the answer carries the winners and the revealed seed."""
        path = f"{self._room}/giveaways/{giveaway}/close"
        result: dict[str, Any] = await self.call("POST", path)
        return result

    async def open_auction(self, sku: str, start_price: int, duration_s: int,
                           **terms: Any) -> dict[str, Any]:  # fmt: skip
        """Terms: mode ("anti_snipe" | "sudden_death"), extend_s, increments
        ([[from_price, step], ...]). Prices in minor units."""
        body = {"sku": sku, "start_price": start_price, "duration_s": duration_s, **terms}
        result: dict[str, Any] = await self.call("POST", f"{self._room}/auctions", body)
        return result

    async def auction(self, auction: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("GET", f"{self._room}/auctions/{auction}")
        return result

    async def auctions(self) -> list[dict[str, Any]]:
        result = await self.call("GET", f"{self._room}/auctions")
        auctions: list[dict[str, Any]] = result["auctions"]
        return auctions

    async def close_auction(self, auction: str) -> dict[str, Any]:
        """End the auction now (the leader wins)."""
        path = f"{self._room}/auctions/{auction}/close"
        result: dict[str, Any] = await self.call("POST", path)
        return result

    async def offer_runner_up(self, auction: str) -> dict[str, Any]:
        """Second chance: offer the lot to the runner-up at their highest bid once the
        winner's hold lapsed (LivecartClientError `winner_holds` before that)."""
        path = f"{self._room}/auctions/{auction}/offer"
        result: dict[str, Any] = await self.call("POST", path)
        return result

    async def comment_to_buy(self) -> dict[str, Any]:
        """The room's comment-to-buy settings (enabled, keyword, keywords)."""
        result: dict[str, Any] = await self.call("GET", f"{self._room}/comment-to-buy")
        return result

    async def set_comment_to_buy(self, **settings: Any) -> dict[str, Any]:
        """Replace the settings: enabled, keyword (e.g. "SOLD"), keywords ({"MUG": "p3"})."""
        path = f"{self._room}/comment-to-buy"
        result: dict[str, Any] = await self.call("PUT", path, settings)
        return result

    # ---- social: group buys, referrals, reminders (docs/api.md) --------------------------------

    async def open_group_buy(self, sku: str, group_price: int, team_size: int, window_s: int,
                             units: int, **terms: Any) -> dict[str, Any]:  # fmt: skip
        """A group-buy deal: teams of `team_size` buy `sku` at `group_price` (minor units)
        if they fill within `window_s`; `units` in all. Terms: per_user_limit."""
        body = {"sku": sku, "group_price": group_price, "team_size": team_size,
                "window_s": window_s, "units": units, **terms}  # fmt: skip
        result: dict[str, Any] = await self.call("POST", f"{self._room}/group-buys", body)
        return result

    async def group_buys(self) -> list[dict[str, Any]]:
        result = await self.call("GET", f"{self._room}/group-buys")
        deals: list[dict[str, Any]] = result["group_buys"]
        return deals

    async def group_buy(self, group_buy: str) -> dict[str, Any]:
        """One deal with its teams (id, state, members, needed, deadline, share_path)."""
        result: dict[str, Any] = await self.call("GET", f"{self._room}/group-buys/{group_buy}")
        return result

    async def referrals(self, limit: int = 10) -> dict[str, Any]:
        """The share-link report (host or moderator): `sharers` (user, name, invites, buyers,
        orders, gmv per currency), `referred_viewers`, `referred_gmv`, `gmv`,
        `referred_share`."""
        result: dict[str, Any] = await self.call("GET", f"{self._room}/referrals?limit={limit}")
        return result

    async def reminder_count(self) -> int:
        """How many viewers subscribed to the room's reminders."""
        count: int = (await self.reminders())["subscribers"]
        return count

    async def reminders(self) -> dict[str, Any]:
        """`subscribers` and each reminder event (id, kind, state, due_at, delivered...)."""
        result: dict[str, Any] = await self.call("GET", f"{self._room}/reminders")
        return result

    # ---- orders ---------------------------------------------------------------------------

    async def orders(
        self, state: str | None = None, review: str | None = None
    ) -> list[dict[str, Any]]:
        params = {k: v for k, v in {"state": state, "review": review}.items() if v}
        query = "?" + "&".join(f"{k}={v}" for k, v in params.items()) if params else ""
        result = await self.call("GET", f"{self._room}/orders{query}")
        orders: list[dict[str, Any]] = result["orders"]
        return orders

    async def refund(self, order: str, refund_id: str, amount: int | None = None, *,
                     restock: list[str] | None = None, reason: str = "host",
                     ) -> dict[str, Any]:  # fmt: skip
        body: dict[str, Any] = {"id": refund_id, "restock": restock or [], "reason": reason}
        if amount is not None:
            body["amount"] = amount
        result: dict[str, Any] = await self.call(
            "POST", f"{self._room}/orders/{order}/refund", body
        )
        return result

    async def fulfill(self, order: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("POST", f"{self._room}/orders/{order}/fulfill")
        return result

    async def approve(self, order: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("POST", f"{self._room}/orders/{order}/approve")
        return result

    async def cancel_order(self, order: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("POST", f"{self._room}/orders/{order}/cancel")
        return result

    async def block(self, kind: str, ident: str) -> dict[str, Any]:
        body = {"kind": kind, "id": ident}
        result: dict[str, Any] = await self.call("POST", f"{self._room}/blocklist", body)
        return result

    async def unblock(self, kind: str, ident: str) -> dict[str, Any]:
        body = {"kind": kind, "id": ident}
        result: dict[str, Any] = await self.call("DELETE", f"{self._room}/blocklist", body)
        return result

    # ---- moderation -----------------------------------------------------------------------

    async def comments(self, since: str | None = None, limit: int = 50) -> dict[str, Any]:
        query = f"?limit={limit}" + (f"&since={since}" if since else "")
        result: dict[str, Any] = await self.call("GET", f"{self._room}/comments{query}")
        return result

    async def delete_comment(self, entry_id: str) -> None:
        await self.call("DELETE", f"{self._room}/comments/{entry_id}")

    async def pin(self, entry_id: str) -> None:
        await self.call("POST", f"{self._room}/pin", {"comment_id": entry_id})

    async def unpin(self) -> None:
        await self.call("DELETE", f"{self._room}/pin")

    async def mute(self, user: str, minutes: int) -> int:
        result = await self.call("POST", f"{self._room}/mutes", {"user": user, "minutes": minutes})
        until: int = result["muted_until"]
        return until

    async def unmute(self, user: str) -> None:
        await self.call("DELETE", f"{self._room}/mutes/{user}")

    async def ban(self, user: str) -> None:
        await self.call("POST", f"{self._room}/bans", {"user": user})

    async def unban(self, user: str) -> None:
        await self.call("DELETE", f"{self._room}/bans/{user}")

    async def set_banned_words(self, words: list[str]) -> None:
        await self.call("PUT", f"{self._room}/banned-words", {"words": words})

    async def slow_mode(self, seconds: int) -> None:
        await self.call("PUT", f"{self._room}/slow-mode", {"seconds": seconds})

    # ---- realtime -------------------------------------------------------------------------

    def ws_url(self) -> str:
        scheme = "wss" if self.base_url.startswith("https") else "ws"
        return f"{scheme}://{self.base_url.split('://', 1)[1]}/ws"

    async def watch(self, codec: str = "json") -> ViewerClient:
        """Join the room over WebSocket with the host's token."""
        seat = ViewerClient(self.ws_url(), self.room, self.token, codec=codec,
                            ssl_context=self.ssl_context)  # fmt: skip
        await seat.connect()
        return seat
