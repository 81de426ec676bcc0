"""`livecart bench …`: the benchmarks' flags; each runs from its module in engine/bench/."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from engine.bench.auction import main as bench_auction
from engine.bench.checkout import main as bench_checkout
from engine.bench.coupons import main as bench_coupons
from engine.bench.fanout import main as bench_fanout
from engine.bench.flood import main as bench_flood
from engine.bench.grab import main as bench_grab
from engine.bench.groupbuy import main as bench_groupbuy
from engine.bench.ledger import main as bench_ledger
from engine.bench.storm import main as bench_storm
from engine.cli.arguments import Subparsers, add_json, number, whole

_BENCHES: dict[str, Callable[[argparse.Namespace], int]] = {
    "fanout": bench_fanout,
    "grab": bench_grab,
    "coupons": bench_coupons,
    "checkout": bench_checkout,
    "auction": bench_auction,
    "group-buy": bench_groupbuy,
    "storm": bench_storm,
    "flood": bench_flood,
    "ledger": bench_ledger,
}


def cmd_bench(args: argparse.Namespace) -> int:
    bench = _BENCHES.get(args.bench)
    return 2 if bench is None else bench(args)


def _add_redis_and_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--redis-url", default=None)
    add_json(parser)


def _add_fanout_parser(bench_sub: Subparsers) -> None:
    fanout = bench_sub.add_parser("fanout", help="room fan-out to many viewers")
    fanout.add_argument("--viewers", type=whole(1), default=1000)
    fanout.add_argument("--comments-per-second", type=whole(1), default=100)
    fanout.add_argument("--seconds", type=number(0, above=True), default=10.0)
    fanout.add_argument("--tick-ms", type=whole(1, 5000), default=100)
    fanout.add_argument(
        "--display-rate",
        type=whole(1, 1000),
        default=None,
        help="room display rate (default: the room default)",
    )
    _add_redis_and_json(fanout)


def _add_grab_parser(bench_sub: Subparsers) -> None:
    grab = bench_sub.add_parser("grab", help="the flash-sale second: many viewers grab at once")
    grab.add_argument("--viewers", type=whole(1), default=1000)
    grab.add_argument("--stock", type=whole(1), default=100)
    grab.add_argument("--attempts", type=whole(1), default=10000)
    grab.add_argument("--limit", type=whole(1), default=1, help="per-user limit (default 1)")
    grab.add_argument("--think-ms", type=number(0), default=0.0,
                      help="each viewer's pause between an answer and the next tap")  # fmt: skip
    grab.add_argument("--window-ms", type=number(0), default=0.0, help="grab batching window")
    grab.add_argument("--metrics", choices=["on", "off"], default="on",
                      help="count show metrics (off: the hot-path cost baseline)")  # fmt: skip
    grab.add_argument("--compare-metrics", type=whole(0), default=0, metavar="ROUNDS",
                      help="run ROUNDS pairs, metrics on then off, and print the cost")  # fmt: skip
    grab.add_argument("--burst", action="store_true",
                      help="every viewer taps once at the sale's start, no retry "
                           "(--attempts and --think-ms do not apply)")  # fmt: skip
    grab.add_argument("--workers", type=whole(1), default=1,
                      help="engine processes on one port (livecart serve --workers)")  # fmt: skip
    _add_redis_and_json(grab)


def _add_commerce_parsers(bench_sub: Subparsers) -> None:
    """A coupon rain, checkouts, an auction and group buys."""
    rain = bench_sub.add_parser("coupons", help="a coupon rain: the whole room claims a drop")
    rain.add_argument("--viewers", type=whole(1), default=1000)
    rain.add_argument("--coupons", type=whole(1), default=100)
    rain.add_argument(
        "--attempts", type=whole(1), default=None, help="taps in all (default: viewers)"
    )
    _add_redis_and_json(rain)
    checkout = bench_sub.add_parser("checkout", help="orders paid end to end through the provider")
    checkout.add_argument("--orders", type=whole(1), default=500)
    checkout.add_argument("--concurrency", type=whole(1), default=50, help="buyers at once")
    _add_redis_and_json(checkout)
    auction = bench_sub.add_parser("auction", help="a contested auction over several processes")
    auction.add_argument("--bidders", type=whole(1), default=200)
    auction.add_argument("--engines", type=whole(1), default=2, help="engine processes (one Redis)")
    auction.add_argument("--seconds", type=whole(5), default=15, help="the auction's duration")
    auction.add_argument("--think-ms", type=number(0), default=300.0,
                         help="each bidder's longest pause before bidding again")  # fmt: skip
    auction.add_argument("--seed", type=int, default=1)
    _add_redis_and_json(auction)
    group = bench_sub.add_parser("group-buy", help="two group-buy teams: one completes, one fails")
    group.add_argument("--team-size", type=whole(2, 50), default=3)
    group.add_argument(
        "--window-s", type=whole(5), default=8, help="each team's time to fill and pay"
    )
    _add_redis_and_json(group)


def _add_storm_parser(bench_sub: Subparsers) -> None:
    storm = bench_sub.add_parser(
        "storm", help="a reconnection storm: an engine killed and restarted under its viewers"
    )
    storm.add_argument("--viewers", type=whole(1), default=2000)
    storm.add_argument("--handshakes-per-s", type=number(0, above=True), default=500.0,
                       help="the restarted engine's handshake limit (burst: twice it)")  # fmt: skip
    storm.add_argument(
        "--outage-s", type=number(0), default=2.0, help="how long the engine is down"
    )
    storm.add_argument("--comments", type=whole(0), default=5, help="posted during the outage")
    _add_redis_and_json(storm)


def _add_flood_parser(bench_sub: Subparsers) -> None:
    flood = bench_sub.add_parser(
        "flood", help="bad-frame floods: a fresh viewer's join time and the engine's memory"
    )
    flood.add_argument("--flooders", type=whole(1), default=10)
    flood.add_argument("--seconds", type=number(1), default=10.0, help="how long they flood")
    flood.add_argument("--probes", type=whole(1), default=5, help="idle joins measured first")
    _add_redis_and_json(flood)


def _add_ledger_parser(bench_sub: Subparsers) -> None:
    ledger = bench_sub.add_parser(
        "ledger", help="order events into PostgreSQL: the ledger writer against a raw COPY"
    )
    ledger.add_argument("--events", type=whole(1), default=20_000, help="order events to write")
    ledger.add_argument("--rooms", type=whole(1, 100), default=4)
    ledger.add_argument("--batch", type=whole(1, 10_000), default=500,
                        help="the writer's batch (LIVECART_LEDGER_BATCH)")  # fmt: skip
    ledger.add_argument("--checkout-orders", type=whole(0), default=500,
                        help="bench checkout orders for the target (0: not run)")  # fmt: skip
    ledger.add_argument("--orders-per-second", type=number(0, above=True), default=None,
                        help="bench checkout's rate, measured before (not run then)")  # fmt: skip
    ledger.add_argument("--redis-url", default=None)
    ledger.add_argument("--database-url", default=None,
                        help="default: an embedded PostgreSQL, fsync on")  # fmt: skip
    add_json(ledger)


def add_parsers(sub: Subparsers) -> None:
    bench = sub.add_parser("bench", help="benchmarks that print figures")
    bench_sub = bench.add_subparsers(dest="bench", required=True)
    for add in (_add_fanout_parser, _add_grab_parser, _add_commerce_parsers, _add_storm_parser,
                _add_flood_parser, _add_ledger_parser):  # fmt: skip
        add(bench_sub)
    bench.set_defaults(func=cmd_bench)
