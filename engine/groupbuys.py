"""Group buys (拼团): teams of K buy a SKU at the group price (issue 9, in progress)."""

from __future__ import annotations

from redis.asyncio import Redis

from engine.orders import OrderStore
from engine.payments import Payments
from engine.sales import SaleStore
from engine.scripts import Scripts
from engine.stock import Stock


class GroupBuys:
    def __init__(self, redis: Redis, scripts: Scripts, sales: SaleStore, stock: Stock,
                 orders: OrderStore, *, payments: Payments, log_maxlen: int,
                 payment_window_ms: int) -> None:  # fmt: skip
        self.redis = redis
        self.scripts = scripts
        self.sales = sales
        self.stock = stock
        self.orders = orders
        self.payments = payments
        self.log_maxlen = log_maxlen
        self.payment_window_ms = payment_window_ms

    async def on_paid(self, room: str, order_id: str) -> None:
        """An order was paid: if it is a team member's, the team may be complete."""

    async def sweep(self, rooms: list[str], now: int) -> int:
        """Settle teams whose deadline passed; returns how many."""
        return 0
