"""`ShopperClient`: a viewer's buying side over HTTP: coupons, checkout, payment, orders,
group-buy teams, share links and show reminders.

async with ShopperClient("http://127.0.0.1:8000", "demo", viewer_token) as me:
    answer = await viewer.grab("s1")                      # over the WebSocket
    order = await me.checkout([answer["reservation"]], address=..., contact=...)
    payment = await me.start_payment(order["id"])
    await me.pay(payment["payment"])                      # the simulated provider's pay API
    team = await me.start_team("gb1")                     # a reservation at the group price
    link = await me.share_link()                          # {ref, url: "/live/demo?ref=..."}
    await me.subscribe_reminders()
"""

from __future__ import annotations

import secrets
from typing import Any

from clients.api import ApiClient


class ShopperClient(ApiClient):
    async def claim(self, drop: str, *, request_id: str | None = None) -> dict[str, Any]:
        """Claim one coupon (`status`: claimed, sold_out, limit_reached, not_started, ended,
        tier_not_eligible)."""
        body = {"id": request_id or secrets.token_hex(8)}
        result: dict[str, Any] = await self.call(
            "POST", f"{self._room}/coupons/drops/{drop}/claim", body
        )
        return result

    async def coupons(self) -> list[dict[str, Any]]:
        result = await self.call("GET", f"{self._room}/coupons/mine")
        coupons: list[dict[str, Any]] = result["coupons"]
        return coupons

    async def checkout(
        self,
        reservations: list[str],
        *,
        address: dict[str, str],
        contact: dict[str, str],
        coupons: list[str] | None = None,
        key: str | None = None,
        device: str | None = None,
    ) -> dict[str, Any]:
        """An order in pending_payment; the same `key` always returns the same order."""
        body: dict[str, Any] = {
            "reservations": reservations,
            "coupons": coupons or [],
            "shipping_address": address,
            "contact": contact,
            "idempotency_key": key or secrets.token_hex(12),
        }
        if device is not None:
            body["device"] = device
        result: dict[str, Any] = await self.call("POST", f"{self._room}/orders", body)
        return result

    async def orders(self) -> list[dict[str, Any]]:
        result = await self.call("GET", f"{self._room}/orders/mine")
        orders: list[dict[str, Any]] = result["orders"]
        return orders

    async def order(self, order: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("GET", f"{self._room}/orders/{order}")
        return result

    async def cancel(self, order: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("POST", f"{self._room}/orders/{order}/cancel")
        return result

    async def start_payment(self, order: str) -> dict[str, Any]:
        """A payment at the provider: `payment`, `pay_url`, `amount`, `currency`."""
        path = f"{self._room}/orders/{order}/payment"
        result: dict[str, Any] = await self.call("POST", path)
        return result

    async def pay(self, payment: str, outcome: str = "succeeded") -> dict[str, Any]:
        """Complete the payment at the simulated provider; it calls the engine back before
        answering, and its answer carries the engine's (`engine.outcome`: paid ...)."""
        result: dict[str, Any] = await self.call(
            "POST", f"/psp/pay/{payment}", {"outcome": outcome}
        )
        return result

    # ---- social: group-buy teams, share links, reminders (docs/api.md) -------------------------

    async def start_team(self, group_buy: str) -> dict[str, Any]:
        """Start a team on a group-buy deal: the team (id, state, needed, deadline,
        share_path, roster...) and `reservation`, this viewer's unit at the group price held
        until the team's deadline; check it out with `checkout` as usual."""
        path = f"{self._room}/group-buys/{group_buy}/teams"
        result: dict[str, Any] = await self.call("POST", path, {})
        return result

    async def join_team(self, group_buy: str, team: str) -> dict[str, Any]:
        """Join an open team; answers like start_team (`team_full`, `team_closed`,
        `already_in_team`, `groupbuy_limit`, `groupbuy_sold_out` refusals)."""
        path = f"{self._room}/group-buys/{group_buy}/teams/{team}/join"
        result: dict[str, Any] = await self.call("POST", path, {})
        return result

    async def share_link(self) -> dict[str, Any]:
        """This viewer's share link: `ref` (signed) and `url` (`/live/{room}?ref=...`)."""
        result: dict[str, Any] = await self.call("POST", f"{self._room}/share", {})
        return result

    async def leaderboard(self, limit: int = 10) -> list[dict[str, Any]]:
        """The room's public invite leaderboard: `rank`, `name`, `invites`."""
        path = f"{self._room}/referrals/leaderboard?limit={limit}"
        result = await self.call("GET", path)
        leaders: list[dict[str, Any]] = result["leaders"]
        return leaders

    async def subscribe_reminders(self) -> dict[str, Any]:
        """Reminders of this show going live and of its flash sales (idempotent); refused
        with `room_not_open` once the show has ended."""
        result: dict[str, Any] = await self.call("POST", f"{self._room}/reminders", {})
        return result

    async def unsubscribe_reminders(self) -> None:
        await self.call("DELETE", f"{self._room}/reminders")

    async def reminders(self) -> dict[str, Any]:
        """This viewer's subscription (`subscribed`, `since`)."""
        result: dict[str, Any] = await self.call("GET", f"{self._room}/reminders/me")
        return result
