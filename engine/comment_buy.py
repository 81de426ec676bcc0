"""Comment-to-buy: comments such as `SOLD A12 2 red` become a grab for their author."""

from __future__ import annotations

from redis.asyncio import Redis

from engine.catalog import Catalog
from engine.comments import Author
from engine.sales import SaleStore
from engine.stock import Stock


class CommentToBuy:
    def __init__(self, redis: Redis, catalog: Catalog, sales: SaleStore, stock: Stock) -> None:
        self.redis = redis
        self.catalog = catalog
        self.sales = sales
        self.stock = stock

    async def on_comment(self, room: str, author: Author, comment: str) -> None:
        """Work in progress (issue 8): parse and grab."""
