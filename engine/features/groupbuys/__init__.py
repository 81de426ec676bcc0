"""Group buys (拼团), a feature plugged in through the seam (engine/core/feature.py): teams
of K buyers who all pay within a deadline get a SKU at the group price; a team that runs
out of time is refunded automatically. docs/group-buys.md documents it."""

from __future__ import annotations

from typing import Any

from engine.core.feature import Feature
from engine.features.groupbuys.api import ROUTES
from engine.features.groupbuys.audit import audit_groupbuys
from engine.features.groupbuys.store import NAME, GroupBuys
from engine.features.groupbuys.view import GroupBuysView


def _service(node: Any) -> GroupBuys:
    return GroupBuys(node.redis, node.scripts, node.sales, node.stock, node.orders,
                     payments=node.payments, log_maxlen=node.settings.stream_maxlen)  # fmt: skip


FEATURE = Feature(
    name=NAME,
    service=_service,
    routes=ROUTES,
    entry_kinds=("groupbuy_", "team_"),
    room_view=GroupBuysView,
    sweep=GroupBuys.sweep,
    audit=audit_groupbuys,
    on_paid=GroupBuys.on_paid,
)
