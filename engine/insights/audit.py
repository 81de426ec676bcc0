"""`livecart audit ROOM`: prove from Redis state that nothing was oversold or lost.

One atomic snapshot of the room (engine/commerce/audit.py), then every context's checks on
it: each sale's stock (available + reserved + sold = allotment + top-ups, records, per-user
limits, the expiry index, the waitlist), coupons, orders and payments
(engine/commerce/audit_orders.py), and each feature's own checks.
"""

from __future__ import annotations

from collections.abc import Sequence

from redis.asyncio import Redis

from engine.commerce.audit import Report, audit_sale, decoded, flat, snapshot
from engine.commerce.audit_orders import audit_commerce, load_figures
from engine.commerce.sales import Sale
from engine.core.feature import Feature, load_features
from engine.core.settings import DEFAULT_FEATURES

__all__ = ["Report", "audit_room"]


async def audit_room(redis: Redis, room: str,
                     features: Sequence[Feature] | None = None) -> Report:  # fmt: skip
    report = Report(room)
    snap = await snapshot(redis, room)
    report.figures = load_figures(snap)
    report.add("room exists", [] if snap.room_exists else [f"no room {room!r}"], "yes")
    reservations = snap.reservations
    for sale_id, (sale_hash, *parts) in snap.sales.items():
        if not sale_hash:
            report.add(f"sale {sale_id}: exists", [f"indexed but {sale_id} has no data"], "")
            continue
        reservations.update(decoded(parts[0]))
        expiry = [item for pair in parts[2] for item in pair]
        raw = [flat(sale_hash), flat(parts[0]), flat(parts[1]), expiry, parts[3], parts[4]]
        audit_sale(report, Sale.from_hash(sale_hash), raw)
    if snap.templates or snap.orders or snap.payments:
        audit_commerce(report, snap, reservations)
    for feature in load_features(DEFAULT_FEATURES) if features is None else features:
        if feature.audit is not None:
            await feature.audit(redis, report, room, snap)
    return report
