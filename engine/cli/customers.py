"""`livecart customers`: a customer's data exported or erased, and address retention
(engine/ledger/privacy.py; docs/ledger.md)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import sqlalchemy.exc

from engine.cli.arguments import Subparsers, add_json, number, settings_from_flags, whole
from engine.cli.sources import (
    add_source_args,
    engine_secret,
    ledger_url_if_any,
    redis_url_for_tools,
)
from engine.ledger import database, privacy
from engine.store import redis_client


async def _customers(args: argparse.Namespace, redis_url: str,
                     database_url: str | None) -> dict[str, Any]:  # fmt: skip
    redis = redis_client.connect(redis_url)
    pool = None
    try:
        if database_url is not None:
            try:
                pool = await database.migrate_and_connect(database_url, size=2)
            except (OSError, asyncpg.PostgresError, sqlalchemy.exc.SQLAlchemyError) as exc:
                raise ValueError(f"PostgreSQL at {database.redacted(database_url)}: "
                                 f"{exc}") from None  # fmt: skip
        if args.customers == "export":
            return await privacy.export(redis, pool, args.user, args.shop)
        if args.customers == "forget":
            secret = engine_secret(settings_from_flags(args))
            return await privacy.forget(redis, pool, args.user, secret=secret, who=args.who,
                                        shop=args.shop, wait_s=args.wait_s)  # fmt: skip
        days = args.days or settings_from_flags(args).address_retention_days
        return await privacy.retention(redis, pool, days=days)
    finally:
        if pool is not None:
            await pool.close()
        await redis.aclose()


def cmd_customers(args: argparse.Namespace) -> int:
    database_url = ledger_url_if_any(args)
    result = asyncio.run(_customers(args, redis_url_for_tools(args), database_url))
    if database_url is None:
        print("livecart: no ledger (no --database-url, DATABASE_URL or embedded PostgreSQL):"
              " Redis only", file=sys.stderr)  # fmt: skip
    if args.customers == "export":
        document = orjson.dumps(result, option=0 if args.json else orjson.OPT_INDENT_2)
        if args.out:
            Path(args.out).write_bytes(document + b"\n")
        else:
            print(document.decode())
        rooms = len(result["redis"]["rooms"])
        rows = sum(len(found) for found in (result["ledger"] or {}).values())
        print(f"livecart: {args.user}: {rooms} rooms in Redis, {rows} ledger rows",
              file=sys.stderr)  # fmt: skip
        return 0
    if args.json:
        print(orjson.dumps(result).decode())
    elif args.customers == "forget":
        _print_forget(result)
    else:
        print(f"retention {result['days']} days: {result['orders_emptied']} orders' addresses "
              f"and contacts emptied ({result['ledger_rows_emptied']} ledger rows)")  # fmt: skip
    if args.customers == "forget":
        return 1 if any("id" in left["holds"] for left in result["left"]) else 0
    return 0


def _print_forget(result: dict[str, Any]) -> None:
    redis_part = result["redis"]
    print(f"{result['user']} is now {result['pseudonym']} in {len(redis_part['rooms'])} rooms: "
          f"{redis_part['changes']} Redis changes, {redis_part['stream_entries_deleted']} "
          f"stream entries deleted ({redis_part['stream_entries_kept']} kept for a consumer "
          "group: run forget again once it has them)")  # fmt: skip
    if result["ledger"] is not None:
        changed = ", ".join(f"{t} {n}" for t, n in result["ledger"]["rows"].items() if n)
        print(f"  ledger rows: {changed or 'none'}; erasure recorded")
    for kept in result["kept"]:
        print(f"  kept {kept['key']}: {kept['why']}")
    for left in result["left"]:
        print(f"  LEFT {left['key']} still holds the user's {left['holds']}")


def add_parsers(sub: Subparsers) -> None:
    customers = sub.add_parser(
        "customers", help="a customer's data: export it, erase it, apply address retention"
    )
    customers_sub = customers.add_subparsers(dest="customers", required=True)
    export_cmd = customers_sub.add_parser(
        "export", help="everything held about USER, in the ledger and in Redis, as JSON"
    )
    export_cmd.add_argument("user")
    export_cmd.add_argument("--out", default=None, help="file to write (default stdout)")
    forget = customers_sub.add_parser(
        "forget", help="erase USER: a pseudonym in the books, personal data emptied; "
        "exit 1 if their id is still found"
    )  # fmt: skip
    forget.add_argument("user")
    forget.add_argument("--who", required=True, help="who asked for or ran the erasure")
    forget.add_argument("--wait-s", type=number(0), default=60.0,
                        help="longest wait for the ledger to catch up (60)")  # fmt: skip
    for command in (export_cmd, forget):
        command.add_argument("--shop", default=None, help="one shop (its host's user id)")
    retention = customers_sub.add_parser(
        "retention", help="empty the addresses and contacts of orders closed long enough ago"
    )
    retention.add_argument("--days", type=whole(1, 3650), default=None,
                           help="default LIVECART_ADDRESS_RETENTION_DAYS (90)")  # fmt: skip
    for command in (export_cmd, forget, retention):
        add_source_args(command, database_help="the ledger (or DATABASE_URL)")
        add_json(command)
    customers.set_defaults(func=cmd_customers)
