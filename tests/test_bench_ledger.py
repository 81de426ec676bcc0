"""`livecart bench ledger` runs end to end, small: its counts add up, the ledger ends up
complete, and its contract fields and ratios are there (behaviour, never the machine's
speed)."""

from __future__ import annotations

from tests.test_bench_commerce import bench


def test_bench_ledger_writes_every_event_once_and_reports_its_ratios() -> None:
    report = bench("ledger", "--events", "300", "--rooms", "2", "--batch", "40",
                   "--checkout-orders", "12")  # fmt: skip
    contract = {"events", "orders", "ledger_events_per_second", "copy_rows_per_second",
                "executemany_rows_per_second", "ratio_to_copy", "ratio_to_executemany",
                "checkout_orders_per_second", "ratio_to_checkout_orders", "target_ratio",
                "target_met", "ledger_complete"}  # fmt: skip
    assert set(report) >= contract
    # Orders made until the streams held 300 events: 2 each, 3 for one in ten (a refund).
    orders = report["orders"]
    assert report["events"] == sum(3 if n % 10 == 3 else 2 for n in range(orders)) >= 300
    complete = report["complete"]
    assert complete["ok"] is True
    assert report["ledger_complete"] is True
    assert complete["counts"] == complete["expected"] == {
        "order_events": report["events"], "orders": orders,
        "payments": orders - sum(1 for n in range(orders) if n % 10 == 9),
        "refunds": sum(1 for n in range(orders) if n % 10 == 3),
    }  # fmt: skip
    assert complete["pending"] == 0
    # Batches of 40 across two rooms: at least events / 40 of them.
    assert report["ledger_batches"] >= report["events"] / 40
    for rate in ("ledger_events_per_second", "copy_rows_per_second",
                 "executemany_rows_per_second", "checkout_orders_per_second"):  # fmt: skip
        assert report[rate] > 0, rate
    assert report["ratio_to_copy"] == round(
        report["ledger_events_per_second"] / report["copy_rows_per_second"], 3
    )
    assert report["ratio_to_checkout_orders"] == round(
        report["ledger_events_per_second"] / report["checkout_orders_per_second"], 2
    )
    assert report["target_met"] == (report["ratio_to_checkout_orders"] >= 10)


def test_a_measured_order_rate_is_taken_instead_of_running_checkout() -> None:
    report = bench("ledger", "--events", "50", "--rooms", "1", "--checkout-orders", "0",
                   "--orders-per-second", "4")  # fmt: skip
    assert report["checkout_orders_per_second"] == 4
    assert report["ratio_to_checkout_orders"] == round(report["ledger_events_per_second"] / 4, 2)
    assert report["ledger_complete"] is True
