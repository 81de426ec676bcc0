"""The money half of `livecart audit`: coupons, orders and payments, checked against each
other and against the stock records, all from one atomic snapshot (engine/insights/audit.py).

- coupons: each drop's coupons are claimed + remaining, and the claimed count matches
  the coupon records; drops never exceed their template's total; nobody holds more of a
  template than its per-user limit;
- coupon states: a used coupon belongs to a paid order that lists it, a locked one to a
  pending order that lists it, and every such order's coupons are in that state;
- payments: every paid order has exactly one succeeded payment of the same amount and
  currency, every succeeded payment pays exactly one order, refunds never exceed
  payments, and no automatic refund is left owing;
- stock: every sold unit belongs to a paid order's line and every paid order's line was
  sold (or returned by a refund with restock);
- GMV both ways: paid orders' totals net of refunds equal succeeded payments net of
  refunds.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

import orjson

from engine.commerce.orders import OrderState
from engine.commerce.sales import Sale

if TYPE_CHECKING:
    from engine.commerce.audit import Report, Snapshot

SOLD_STATES = frozenset(s.value for s in OrderState if s.counts_as_sale)


def net_gmv(order: dict[str, str]) -> int:
    """What a stored order adds to GMV: its total net of refunds once it was paid, else 0.
    The one definition the audit, the dashboard and the reports use."""
    if order.get("state") not in SOLD_STATES:
        return 0
    return int(order["total"]) - int(order.get("refunded", 0))


def _coupons_add_up(snap: Snapshot) -> tuple[list[str], str]:
    problems = []
    per_drop = Counter(record["d"] for record in snap.coupons.values())
    dropped: Counter[str] = Counter()
    for drop_id, drop in snap.drops.items():
        quantity, claimed, remaining = (int(drop[f]) for f in ("quantity", "claimed", "remaining"))
        dropped[drop["template"]] += quantity
        if claimed + remaining != quantity or remaining < 0:
            problems.append(f"drop {drop_id}: {claimed} claimed + {remaining} left != {quantity}")
        if per_drop[drop_id] != claimed:
            problems.append(f"drop {drop_id}: {per_drop[drop_id]} coupons, counter {claimed}")
    for template_id, template in snap.templates.items():
        issued = snap.issued.get(template_id, 0)
        if dropped[template_id] != issued or issued > template["total"]:
            problems.append(f"template {template_id}: {dropped[template_id]} in drops, "
                            f"{issued} counted, total {template['total']}")  # fmt: skip
    held = Counter(f"{r['t']} {r['u']}" for r in snap.coupons.values())
    for holder, count in sorted(held.items()):
        terms = snap.templates.get(holder.split()[0])
        if snap.holders.get(holder, 0) != count:
            problems.append(f"{holder} holds {count}, counted {snap.holders.get(holder, 0)}")
        if terms is not None and count > terms["per_user_limit"]:
            problems.append(f"{holder} holds {count}, above the limit")
    issued_total = sum(int(d["quantity"]) for d in snap.drops.values())
    claimed_total = sum(int(d["claimed"]) for d in snap.drops.values())
    return problems, (
        f"{issued_total} issued = {claimed_total} claimed + {issued_total - claimed_total} "
        f"unclaimed, in {len(snap.drops)} drops"
    )


def _coupon_states(snap: Snapshot) -> tuple[list[str], str]:
    problems = []
    expected = {"used": SOLD_STATES, "locked": {OrderState.PENDING_PAYMENT.value}}
    for coupon_id, record in sorted(snap.coupons.items()):
        if record["s"] not in expected:
            continue
        order = snap.orders.get(record.get("o", ""))
        if order is None or order["state"] not in expected[record["s"]]:
            state = order["state"] if order else "missing"
            problems.append(f"{record['s']} coupon {coupon_id} -> order {record.get('o')} {state}")
        elif coupon_id not in order.get("coupons", "").split():
            problems.append(f"coupon {coupon_id} is not listed by order {record['o']}")
    for order_id, order in snap.orders.items():
        want = "used" if order["state"] in SOLD_STATES else "locked"
        if order["state"] not in SOLD_STATES | {OrderState.PENDING_PAYMENT.value}:
            continue
        for coupon_id in order.get("coupons", "").split():
            record = snap.coupons.get(coupon_id, {})
            if record.get("s") != want or record.get("o") != order_id:
                problems.append(f"order {order_id} ({order['state']}) has coupon {coupon_id} "
                                f"{record.get('s', 'missing')}")  # fmt: skip
    states = Counter(r["s"] for r in snap.coupons.values())
    return problems, ", ".join(f"{n} {s}" for s, n in sorted(states.items())) or "no coupons"


def _payments_match(snap: Snapshot) -> tuple[list[str], str]:
    problems = []
    paid_by: dict[str, list[str]] = {}
    for payment_id, p in sorted(snap.payments.items()):
        if p["s"] == "succeeded":
            paid_by.setdefault(p["o"], []).append(payment_id)
        if p.get("r", 0) > p["a"]:
            problems.append(f"payment {payment_id} refunded {p['r']} of {p['a']}")
        if p["s"] == "refund_due":
            problems.append(f"payment {payment_id} is owed an automatic refund")
    for order_id, order in sorted(snap.orders.items()):
        payments = paid_by.pop(order_id, [])
        if order["state"] not in SOLD_STATES:
            if payments:
                problems.append(f"order {order_id} is {order['state']} but has a payment")
            continue
        if len(payments) != 1 or order.get("payment") != payments[0]:
            problems.append(f"paid order {order_id} has succeeded payments {payments}")
            continue
        p = snap.payments[payments[0]]
        if (p["a"], p["c"]) != (int(order["total"]), order["currency"]):
            problems.append(f"order {order_id} is {order['total']} {order['currency']}, "
                            f"paid {p['a']} {p['c']}")  # fmt: skip
        if p.get("r", 0) != int(order["refunded"]):
            problems.append(
                f"order {order_id} refunded {order['refunded']}, payment {p.get('r', 0)}"
            )
    for order_id, payments in paid_by.items():
        problems.append(f"payments {payments} pay unknown order {order_id}")
    paid = sum(1 for o in snap.orders.values() if o["state"] in SOLD_STATES)
    return problems, f"{paid} paid orders, each with one verified payment"


def _stock_matches_orders(
    snap: Snapshot, reservations: dict[str, dict[str, Any]]
) -> tuple[list[str], str]:
    problems = []
    sold_units = 0
    for rid, record in sorted(reservations.items()):
        if record["s"] not in {"sold", "returned"}:
            continue
        order = snap.orders.get(record.get("o", ""))
        if record["s"] == "sold":
            sold_units += record["q"]
        if order is None or order["state"] not in SOLD_STATES:
            problems.append(f"{record['s']} {rid} -> order {record.get('o')} "
                            f"{order['state'] if order else 'missing'}")  # fmt: skip
    for order_id, order in sorted(snap.orders.items()):
        if order["state"] not in SOLD_STATES:
            continue
        for line in orjson.loads(order["detail"])["lines"]:
            line_record = reservations.get(line["reservation"])
            if (line_record is None or line_record["s"] not in {"sold", "returned"}
                    or line_record["o"] != order_id):  # fmt: skip
                state = line_record["s"] if line_record else "missing"
                problems.append(f"paid order {order_id}: line {line['reservation']} is {state}")
            elif line_record["q"] != line["quantity"]:
                problems.append(f"order {order_id}: line {line['reservation']} quantity differs")
    return problems, f"{sold_units} units sold, all on paid order lines"


def _gmv(snap: Snapshot) -> tuple[list[str], str]:
    by_orders: Counter[str] = Counter()
    by_payments: Counter[str] = Counter()
    for order in snap.orders.values():
        if order["state"] in SOLD_STATES:
            by_orders[order["currency"]] += net_gmv(order)
            refunds = sum(orjson.loads(v)["amount"] for k, v in order.items()
                          if k.startswith("refund:"))  # fmt: skip
            if refunds != int(order["refunded"]):
                return [
                    f"order {order['id']}: refunds add to {refunds}, not {order['refunded']}"
                ], ""
    for p in snap.payments.values():
        if p["s"] == "succeeded":
            by_payments[p["c"]] += p["a"] - p.get("r", 0)
    problems = []
    for currency in sorted(set(by_orders) | set(by_payments)):
        if by_orders[currency] != by_payments[currency]:
            problems.append(f"{currency}: orders {by_orders[currency]}, payments "
                            f"{by_payments[currency]}")  # fmt: skip
    fine = ", ".join(f"{c} {by_orders[c]}" for c in sorted(by_orders)) or "0"
    return problems, f"net GMV {fine} by orders = by payments"


def audit_commerce(report: Report, snap: Snapshot, reservations: dict[str, dict[str, Any]]) -> None:
    report.add("coupons: issued = claimed + unclaimed", *_coupons_add_up(snap))
    report.add("coupons: used and locked match their orders", *_coupon_states(snap))
    report.add("orders: paid orders match verified payments", *_payments_match(snap))
    report.add(
        "orders: stock sold matches paid order lines", *_stock_matches_orders(snap, reservations)
    )
    report.add("orders: GMV equal both ways", *_gmv(snap))


def load_figures(snap: Snapshot) -> dict[str, int]:
    """What a load test reports besides the checks: units reserved or sold beyond a sale's
    units (`oversell`), and coupons used by more than one paid order."""
    oversell = 0
    for sale_hash, *_ in snap.sales.values():
        if sale_hash:
            sale = Sale.from_hash(sale_hash)
            oversell += max(0, sale.reserved + sale.sold - sale.units, -sale.available)
    uses: Counter[str] = Counter()
    for order in snap.orders.values():
        if order["state"] in SOLD_STATES:
            uses.update(order.get("coupons", "").split())
    return {"oversell": oversell, "double_used_coupons": sum(1 for n in uses.values() if n > 1)}
