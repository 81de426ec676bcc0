"""Comment-to-buy, a feature on the seam (engine/core/feature.py): a viewer's comment such
as `SOLD 3 2 blue` becomes a grab for its author, answered privately; the host sets the
keywords over HTTP. docs/comment-to-buy.md documents it."""

from __future__ import annotations

from typing import Any

from engine.core.feature import Feature
from engine.features.comment_buy.api import ROUTES
from engine.features.comment_buy.store import NAME, CommentToBuy


def _service(node: Any) -> CommentToBuy:
    return CommentToBuy(node.redis, node.catalog, node.sales, node.stock)


FEATURE = Feature(name=NAME, service=_service, routes=ROUTES, on_comment=CommentToBuy.on_comment)
