"""The show's figures, from the counters engine.store.meter keeps: per-minute rows, the funnel
and the derived rates. Pure functions (no I/O), shared by the live dashboard and the
post-live report; docs/metrics.md defines every figure.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.commerce.sales import Sale
from engine.store.meter import Metric

# Per-minute columns, in metrics.csv order (online_* come from the presence sync's samples).
MINUTE_COLUMNS = (
    "minute", "online_avg", "online_max", "views", "new_viewers", "comments", "likes", "shares",
    "impressions", "clicks", "grab_attempts", "reservations", "orders", "paid_orders", "gmv",
    "refunded", "coupon_claims", "coupon_redemptions", "giveaway_entries", "auction_bids",
)  # fmt: skip
_COUNTED = {
    "views": Metric.VIEWS, "new_viewers": Metric.NEW_VIEWERS, "comments": Metric.COMMENTS,
    "likes": Metric.LIKES, "shares": Metric.SHARES, "impressions": Metric.IMPRESSIONS,
    "clicks": Metric.CLICKS, "grab_attempts": Metric.GRAB_ATTEMPTS,
    "reservations": Metric.RESERVATIONS, "orders": Metric.ORDERS,
    "paid_orders": Metric.PAID_ORDERS, "coupon_claims": Metric.COUPON_CLAIMS,
    "coupon_redemptions": Metric.COUPON_REDEMPTIONS, "giveaway_entries": Metric.GIVEAWAY_ENTRIES,
    "auction_bids": Metric.AUCTION_BIDS,
}  # fmt: skip


@dataclass
class Counters:
    """The metrics hash, parsed: minute -> name -> count, and the totals."""

    minutes: dict[int, dict[str, int]] = field(default_factory=dict)
    totals: dict[str, int] = field(default_factory=dict)

    @classmethod
    def parse(cls, raw: Mapping[bytes | str, bytes | str]) -> Counters:
        minutes: defaultdict[int, dict[str, int]] = defaultdict(dict)
        totals: dict[str, int] = {}
        for key, value in raw.items():
            name = key.decode() if isinstance(key, bytes) else key
            scope, _, metric = name.partition(":")
            if scope == "t":
                totals[metric] = int(value)
            elif scope.isdigit():
                minutes[int(scope)][metric] = int(value)
        return cls(dict(sorted(minutes.items())), totals)

    def total(self, metric: Metric, dim: str | None = None) -> int:
        return self.totals.get(str(metric) if dim is None else f"{metric}.{dim}", 0)

    def by_dim(self, metric: Metric) -> dict[str, int]:
        """The per-dimension totals of `metric` (per product, sale, status or currency)."""
        prefix = f"{metric}."
        return {k[len(prefix) :]: v for k, v in self.totals.items() if k.startswith(prefix)}

    def span_ms(self) -> tuple[int, int] | None:
        """The first minute's start and the last minute's end with anything counted."""
        if not self.minutes:
            return None
        return min(self.minutes) * 60_000, (max(self.minutes) + 1) * 60_000


def minute_rows(counters: Counters, currency: str | None) -> list[dict[str, Any]]:
    """One row per minute from the first to the last with anything counted (quiet minutes
    in between included, as zeros); money in `currency`."""
    if not counters.minutes:
        return []
    first, last = min(counters.minutes), max(counters.minutes)
    rows = []
    for minute in range(first, last + 1):
        counts = counters.minutes.get(minute, {})
        samples = counts.get("online_samples", 0)
        row: dict[str, Any] = {
            "minute": minute * 60_000,
            "online_avg": round(counts.get("online_sum", 0) / samples, 1) if samples else 0.0,
            "online_max": counts.get("online_max", 0),
        }
        for column, metric in _COUNTED.items():
            row[column] = counts.get(str(metric), 0)
        row["gmv"] = counts.get(f"{Metric.GMV}.{currency}", 0) if currency else 0
        row["refunded"] = counts.get(f"{Metric.REFUNDED}.{currency}", 0) if currency else 0
        rows.append({column: row[column] for column in MINUTE_COLUMNS})
    return rows


def ratio(part: int, whole: int, digits: int = 4) -> float:
    return round(part / whole, digits) if whole else 0.0


def main_currency(gmv: Mapping[str, int], fallback: str | None = None) -> str | None:
    """The currency with the most GMV (ties: alphabetical), else `fallback`."""
    if not gmv:
        return fallback
    return sorted(gmv.items(), key=lambda item: (-item[1], item[0]))[0][0]


def derived(*, viewers: int, views: int, clicks: int, grab_attempts: int, reservations: int,
            orders: int, paid_orders: int, paid_buyers: int, gmv: int, claims: int,
            redemptions: int, referral_gmv: int) -> dict[str, Any]:  # fmt: skip
    """The funnel and the rates, in one currency's money (docs/metrics.md)."""
    return {
        "funnel": {
            "viewers": viewers,
            "product_clicks": clicks,
            "grab_attempts": grab_attempts,
            "reservations": reservations,
            "orders": orders,
            "paid": paid_orders,
        },
        "conversion": ratio(paid_buyers, viewers),
        "click_to_order_rate": ratio(orders, clicks),
        "average_order_value": gmv // paid_orders if paid_orders else 0,
        "gmv_per_thousand_views": gmv * 1000 // views if views else 0,
        "coupon_redemption_rate": ratio(redemptions, claims),
        "referral_gmv": referral_gmv,
        "referral_gmv_share": ratio(referral_gmv, gmv),
    }


_RETURNED = frozenset({"released", "expired", "returned"})


def sell_through_ms(sale: Sale, records: Iterable[Mapping[str, Any]]) -> int | None:
    """How long after its start the sale first had no units left (all its units, top-ups
    included, held or sold at once), from its reservation records: each took its units when
    grabbed (`c`) and, if it was released, expired or returned, gave them back then (`x`).
    None if that never happened."""
    events: list[tuple[int, int, int]] = []  # (time, 0 = back / 1 = taken, units)
    for record in records:
        if "c" not in record:
            continue
        units = int(record.get("q", 1))
        events.append((int(record["c"]), 1, units))
        if record["s"] in _RETURNED and "x" in record:
            events.append((int(record["x"]), 0, units))
    taken = 0
    for at, kind, units in sorted(events):  # at the same ms, units come back first
        taken += units if kind else -units
        if taken >= sale.units:
            return max(0, at - sale.starts_at)
    return None


def sell_through_text(units: int, ms: int | None) -> str | None:
    """ "1,000 units in 3.2 s" (minutes as m:ss past a minute); None when not sold out."""
    if ms is None:
        return None
    noun = "unit" if units == 1 else "units"
    if ms < 60_000:
        return f"{units:,} {noun} in {ms / 1000:.1f} s"
    seconds = ms // 1000
    return f"{units:,} {noun} in {seconds // 60}:{seconds % 60:02d}"


# ---- per second, for short shows ----------------------------------------------------------------

# A show shorter than this is charted per second (report.html); longer ones per minute.
SHORT_SHOW_S = 600
SECOND_COLUMNS = ("second", "comments", "reservations", "orders", "paid_orders", "gmv")


@dataclass(frozen=True)
class SecondView:
    """A short show's per-second rows (second_rows), from `start` to `end` (ms), and since
    when the room log still holds every comment: it keeps only its last entries
    (the stream_maxlen setting), so a chatty show's early comments may be gone (None: all there)."""

    start: int
    end: int
    rows: list[dict[str, int]]
    comments_from: int | None = None


def second_rows(start_ms: int, end_ms: int, *, comments: Iterable[int],
                reservations: Iterable[int], orders: Iterable[int],
                paid: Iterable[tuple[int, int]]) -> list[dict[str, int]]:  # fmt: skip
    """One row per second from the second of `start_ms` to the one of `end_ms` (both
    included): how many comments, reservations and orders were made in it (their times, ms),
    and how many orders were paid and the net GMV they brought (`paid`: (paid_at, net))."""
    first, last = start_ms // 1000, max(start_ms, end_ms) // 1000
    rows = [{column: 0 for column in SECOND_COLUMNS} | {"second": s * 1000}
            for s in range(first, last + 1)]  # fmt: skip

    def add(at_ms: int, column: str, amount: int = 1) -> None:
        index = at_ms // 1000 - first
        if 0 <= index < len(rows):
            rows[index][column] += amount

    for at in comments:
        add(at, "comments")
    for at in reservations:
        add(at, "reservations")
    for at in orders:
        add(at, "orders")
    for at, net in paid:
        add(at, "paid_orders")
        add(at, "gmv", net)
    return rows
