"""A room's data read out of Redis: `livecart audit`, `livecart report`, `livecart orders
export` and `livecart orders feed`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import orjson
from redis.asyncio import Redis

from engine.cli.arguments import Subparsers, add_json
from engine.cli.sources import add_source_args, read_room, redis_url_for_tools
from engine.commerce.order_feed import OrderFeed, export
from engine.commerce.orders import load_orders
from engine.insights.audit import audit_room
from engine.insights.report import build, load_show, write
from engine.insights.report_html import money


def cmd_audit(args: argparse.Namespace) -> int:
    report = read_room(redis_url_for_tools(args), args.room, audit_room)
    if args.json:
        print(orjson.dumps(report.to_wire()).decode())
    else:
        print(report.render())
    return 0 if report.ok else 1


async def _report_files(redis: Redis, room: str) -> dict[str, bytes]:
    return build(await load_show(redis, room))


def cmd_report(args: argparse.Namespace) -> int:
    files = read_room(redis_url_for_tools(args), args.room, _report_files)
    paths = write(files, Path(args.out))
    summary = orjson.loads(files["summary.json"])
    if args.json:
        print(
            orjson.dumps(
                {
                    "room": args.room,
                    "out": str(Path(args.out).resolve()),
                    "files": [str(p) for p in paths],
                    "summary": summary,
                }
            ).decode()
        )
    else:
        for path in paths:
            print(path)
    print(f"livecart: report of {args.room}: {summary['unique_viewers']} viewers, "
          f"{summary['paid_orders']} paid orders, "
          f"GMV {money(summary['gmv'], summary['currency'])}", file=sys.stderr)  # fmt: skip
    return 0


def _export(url: str, args: argparse.Namespace) -> int:
    orders = read_room(url, args.room, load_orders)
    chunks = export(orders, args.format)
    if args.out is None:
        sys.stdout.writelines(chunks)
    else:
        with open(args.out, "w", encoding="utf-8", newline="") as handle:
            handle.writelines(chunks)
    print(f"livecart: exported {len(orders)} orders of {args.room}", file=sys.stderr)
    return 0


def _feed(url: str, args: argparse.Namespace) -> int:
    async def read(redis: Redis, room: str) -> int:
        feed = OrderFeed(redis, room, args.group, args.consumer)
        await feed.ensure_group()
        events = await feed.pending(args.count) or await feed.read(args.count, args.block_ms)
        for event_id, fields in events:
            print(orjson.dumps({"id": event_id, **fields}).decode())
        if not args.no_ack:
            await feed.ack([event_id for event_id, _ in events])
        return 0

    return read_room(url, args.room, read)


def cmd_orders(args: argparse.Namespace) -> int:
    url = redis_url_for_tools(args)
    if args.orders == "export":
        return _export(url, args)
    return _feed(url, args)


def add_parsers(sub: Subparsers) -> None:
    audit = sub.add_parser(
        "audit", help="check a room's stock, coupon, order and payment invariants; exit 1 if not"
    )
    audit.add_argument("room")
    add_source_args(audit)
    add_json(audit)
    audit.set_defaults(func=cmd_audit)

    report = sub.add_parser(
        "report", help="the post-live report: report.html, summary.json, metrics.csv, orders.csv"
    )
    report.add_argument("room")
    report.add_argument("--out", required=True, help="directory to write the files into")
    add_source_args(report)
    add_json(report)
    report.set_defaults(func=cmd_report)

    orders = sub.add_parser("orders", help="a room's orders for downstream systems")
    orders_sub = orders.add_subparsers(dest="orders", required=True)
    export_cmd = orders_sub.add_parser("export", help="every order of a room as CSV or JSON lines")
    export_cmd.add_argument("room")
    export_cmd.add_argument("--format", choices=["csv", "jsonl"], default="csv")
    export_cmd.add_argument("--out", default=None, help="file to write (default stdout)")
    feed_cmd = orders_sub.add_parser(
        "feed", help="read order events through a consumer group (JSON lines), then ack them"
    )
    feed_cmd.add_argument("room")
    feed_cmd.add_argument("--group", default="erp", help="consumer group (default erp)")
    feed_cmd.add_argument("--consumer", default="cli", help="consumer name (default cli)")
    feed_cmd.add_argument("--count", type=int, default=100, help="events to read at most")
    feed_cmd.add_argument("--block-ms", type=int, default=None, help="wait for new events")
    feed_cmd.add_argument("--no-ack", action="store_true", help="leave the events pending")
    for command in (export_cmd, feed_cmd):
        add_source_args(command)
    orders.set_defaults(func=cmd_orders)
