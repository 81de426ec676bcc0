"""`livecart reconcile`: a UTC day of the payment provider's settlement against the ledger
and Redis, and `reconcile fix`, one exception's remedy (docs/ledger.md § Reconciliation)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import getpass
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import orjson

from engine.cli.arguments import Subparsers, add_json, settings_from_flags
from engine.cli.sources import (
    add_source_args,
    database_url_for_tools,
    engine_secret,
    redis_url_for_tools,
)
from engine.insights.report_html import money
from engine.ledger import database
from engine.ledger.reconcile_day import Report, reconcile
from engine.ledger.remedies import Remedies
from engine.server.node import Node
from engine.store import bus
from engine.store.keys import check_room_id


@contextlib.asynccontextmanager
async def _books(args: argparse.Namespace) -> AsyncIterator[tuple[Node, asyncpg.Pool]]:
    """A node that is not serving (its Redis, scripts, payment provider and payments, built as
    the engine builds them, so a fix takes the engine's own paths) and the ledger's pool."""
    settings = settings_from_flags(args)
    redis_url, database_url = redis_url_for_tools(args), database_url_for_tools(args)
    node = Node(settings, redis_url, engine_secret(settings))
    try:
        node.scripts.use(await bus.choose(settings.pubsub, node.redis))  # scripts publish on it
        pool = await database.migrate_and_connect(database_url)
        try:
            yield node, pool
        finally:
            await pool.close()
    finally:
        await node.stop()


def _utc_day(text: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a day like 2026-12-07, not {text!r}") from None


async def _reconcile(args: argparse.Namespace) -> Report:
    async with _books(args) as (node, pool):
        provider = Remedies(node.redis, pool, node.payments).provider()
        room = None if args.room is None else check_room_id(args.room)
        return await reconcile(node.redis, pool, provider, args.date, room)


async def _fix(args: argparse.Namespace) -> dict[str, Any]:
    async with _books(args) as (node, pool):
        who = args.who or f"{_user_name()} (cli)"
        return await Remedies(node.redis, pool, node.payments).fix(args.id, who=who, why=args.why)


def _user_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name, no passwd entry (some containers)
        return "unknown"


def _amount(amount: int | None, currency: str | None) -> str:
    return "-" if amount is None else money(amount, currency)


def _render(report: Report) -> str:
    wire = report.to_wire()
    where = f" of room {report.room}" if report.room else ""
    lines = [f"reconciliation of {wire['date']}{where}: {len(report.open)} open, "
             f"{len(report.items) - len(report.open)} resolved"]  # fmt: skip
    for item in wire["exceptions"]:
        lines.append(f"  {item['status']:<8} {item['id']}")
        lines.append(f"           order {item['order'] or '-'}, payment {item['payment'] or '-'}"
                     f"{', refund ' + item['refund'] if item['refund'] else ''}: provider "
                     f"{_amount(item['provider_amount'], item['provider_currency'])}, books "
                     f"{_amount(item['books_amount'], item['books_currency'])}; remedy "
                     f"{item['remedy']}")  # fmt: skip
        if item["adjustment"]:
            done = item["adjustment"]
            lines.append(f"           fixed by {done['who']} at {done['at']}: {done['why']}")
    return "\n".join(lines)


def cmd_reconcile(args: argparse.Namespace) -> int:
    if args.reconcile_command == "fix":
        result = asyncio.run(_fix(args))
        done = result["adjustment"]
        if args.json:
            print(orjson.dumps(result).decode())
        elif result["fixed"]:
            outcome = orjson.dumps(done["detail"]["outcome"]).decode()
            print(f"fixed {result['id']}: {done['remedy']} {outcome}")
        else:
            print(f"already fixed: {result['id']} by {done['who']} at {done['at']} "
                  f"({done['remedy']}): {done['why']}; nothing done")  # fmt: skip
        return 0
    if args.date is None:
        raise ValueError("reconcile needs --date YYYY-MM-DD (a UTC day)")
    report = asyncio.run(_reconcile(args))
    print(orjson.dumps(report.to_wire()).decode() if args.json else _render(report))
    return 0 if not report.open else 1


def add_parsers(sub: Subparsers) -> None:
    reconcile_cmd = sub.add_parser(
        "reconcile",
        help="a UTC day of the payment provider's settlement against the ledger and Redis; "
        "exit 1 while an exception is open",
    )
    reconcile_cmd.add_argument("--date", type=_utc_day, default=None, help="the UTC day")
    reconcile_cmd.add_argument("--room", default=None, help="this room only")
    add_json(reconcile_cmd)
    actions = reconcile_cmd.add_subparsers(dest="reconcile_command")
    fix = actions.add_parser("fix", help="apply one exception's remedy, once, and record it")
    fix.add_argument("id", help="the exception's id, as reconcile printed it")
    fix.add_argument("--who", default=None, help="who fixes it (default: your user name)")
    fix.add_argument("--why", required=True, help="why: kept with the adjustment")
    fix.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    for parser, default in ((reconcile_cmd, None), (fix, argparse.SUPPRESS)):
        # The fix's own copies must not reset what was given before `fix` (SUPPRESS).
        add_source_args(parser, database_help="the ledger's PostgreSQL (or DATABASE_URL)",
                        default=default)  # fmt: skip
    reconcile_cmd.set_defaults(func=cmd_reconcile)
