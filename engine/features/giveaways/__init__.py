"""Giveaways (lucky bags), plugged in through the seam (engine/core/feature.py): the host
opens a giveaway, viewers enter (over HTTP, or by commenting its keyword), and a
commit-reveal draw picks the winners, who get their prizes. docs/giveaways.md documents it;
its error codes are the engine's own (engine/core/errors.py, docs/protocol.md § Errors)."""

from __future__ import annotations

from typing import Any

from engine.core.feature import Feature
from engine.features.giveaways.api import ROUTES
from engine.features.giveaways.audit import audit_giveaways
from engine.features.giveaways.store import NAME, GiveawayStore
from engine.features.giveaways.view import GiveawaysView


def _service(node: Any) -> GiveawayStore:
    return GiveawayStore(
        node.redis, node.scripts, node.settings.stream_maxlen, sales=node.sales,
        stock=node.stock, coupons=node.coupons, watchtime=node.watchtime, meter=node.meter,
    )  # fmt: skip


FEATURE = Feature(
    name=NAME,
    service=_service,
    routes=ROUTES,
    entry_kinds=("giveaway_",),
    room_view=GiveawaysView,
    audit=audit_giveaways,
    on_comment=GiveawayStore.on_comment,  # a keyword giveaway's keyword enters the viewer
)
