"""`livecart` command line (CONTRACTS.md): serve, demo, token, audit, orders, reconcile,
giveaway, bench, loadtest."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import errno
import getpass
import logging
import math
import os
import socket
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeAlias

import asyncpg
import orjson
import sqlalchemy.exc
from redis.exceptions import RedisError

from engine.bench.auction import main as bench_auction
from engine.bench.checkout import main as bench_checkout
from engine.bench.coupons import main as bench_coupons
from engine.bench.fanout import main as bench_fanout
from engine.bench.flood import main as bench_flood
from engine.bench.grab import main as bench_grab
from engine.bench.groupbuy import main as bench_groupbuy
from engine.bench.ledger import main as bench_ledger
from engine.bench.storm import main as bench_storm
from engine.commerce.order_feed import OrderFeed, export
from engine.commerce.orders import Order, load_orders
from engine.core.collector import pace_for_connections
from engine.core.errors import LivecartError
from engine.core.identity import Role
from engine.core.logs import configure as configure_logs
from engine.core.loop import run_event_loop
from engine.core.settings import Settings, load_secret
from engine.features.giveaways.store import check_draw
from engine.insights.audit import Report, audit_room
from engine.insights.report import build, load_show, write
from engine.insights.report_html import money
from engine.ledger import database, privacy
from engine.ledger import reconcile as books
from engine.ledger.remedies import Remedies
from engine.rooms import auth, jwt_auth
from engine.server.admission import origin_warning
from engine.server.app import Engine
from engine.server.node import Node
from engine.server.workers import Supervisor, default_workers
from engine.store import bus, redis_client, redis_config
from engine.store.keys import check_room_id, check_user_id
from engine.store.redis_config import RedisConfigError
from engine.store.redis_server import EmbeddedRedis, RedisServerError
from engine.tools.demo import run_demo
from engine.tools.dev_cluster import DevCluster, stop_signals
from loadtests.run import add_parser as add_loadtest_parser

log = logging.getLogger("livecart.cli")


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.from_env(
        host=getattr(args, "host", None),
        port=getattr(args, "port", None),
        redis_url=getattr(args, "redis_url", None),
        data_dir=Path(args.data_dir) if getattr(args, "data_dir", None) else None,
        tick_ms=getattr(args, "tick_ms", None),
        log_format=getattr(args, "log_format", None),
    )


def _add_server_args(parser: argparse.ArgumentParser) -> None:
    # Unset flags fall back to the environment (LIVECART_HOST, LIVECART_PORT), then the defaults.
    parser.add_argument("--host", default=None, help="interface to bind (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=None, help="port (0 picks a free one; default 8000)"
    )
    parser.add_argument(
        "--redis-url", default=None, help="use this Redis instead of an embedded one (or REDIS_URL)"
    )
    parser.add_argument(
        "--data-dir",
        default=None,
        help="embedded Redis data and the token secret (default ./.livecart)",
    )
    parser.add_argument(
        "--tick-ms", type=int, default=None, help="room fan-out tick in ms (default 100)"
    )
    parser.add_argument("--log-format", choices=["text", "json"], default=None)


async def _serve(settings: Settings) -> int:
    async with Engine(settings) as engine:
        line = f"livecart listening on {engine.base_url}  (viewers: {engine.ws_url}/{{room}})"
        await engine.serve_until_signal(lambda: print(line, flush=True))
    return 0


def _port_in_use(settings: Settings) -> ValueError:
    return ValueError(
        f"an engine (or something else) is already listening on {settings.host}:"
        f"{settings.port}: stop it or pass --port"
    )


def _engine_settings(args: argparse.Namespace) -> Settings:
    """`serve` and `demo`: the settings, checked before anything starts."""
    settings = _settings(args)
    if settings.redis_url:
        redis_client.check_url(settings.redis_url)
    _check_port_free(settings)
    return settings


def _check_port_free(settings: Settings) -> None:
    """Before anything starts (the embedded Redis locks the data dir first, and workers
    would share a port with SO_REUSEPORT): say plainly that the port is taken."""
    if not settings.port:
        return
    probe = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(settings.host)
    try:
        with socket.create_connection((probe or settings.host, settings.port), timeout=0.5):
            pass
    except OSError:
        return
    raise _port_in_use(settings)


def _run_engine(settings: Settings, main: Coroutine[Any, Any, int]) -> int:
    """Run one engine's event loop; a port taken after the check is the same sentence."""
    pace_for_connections()
    try:
        return run_event_loop(main)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise _port_in_use(settings) from None
        raise


def _check_redis_for_workers(settings: Settings) -> None:
    """`serve --workers N` on an external Redis: refuse an unsafe one once, here, rather
    than in every worker. An unreachable Redis is left to the workers, which wait for it."""
    if settings.redis_url is None or settings.redis_unsafe_ok:
        return
    try:
        asyncio.run(redis_config.check_url(settings.redis_url))
    except (RedisError, OSError):
        return


def cmd_serve(args: argparse.Namespace) -> int:
    workers = default_workers() if args.workers is None else args.workers
    if workers < 1:
        print("livecart: --workers must be at least 1", file=sys.stderr)
        return 2
    settings = _engine_settings(args)
    configure_logs(settings.log_format, settings.log_level)
    warning = origin_warning(settings.allowed_origins, settings.public_url)
    if warning is not None:
        log.warning(warning)
    if workers > 1:
        # N processes on one port (SO_REUSEPORT), one Redis: engine/server/workers.py.
        _check_redis_for_workers(settings)
        return Supervisor(settings, workers).run()
    return _run_engine(settings, _serve(settings))


def cmd_demo(args: argparse.Namespace) -> int:
    settings = _engine_settings(args)
    if "LIVECART_SIMULATED_PSP" not in os.environ:
        settings = settings.replace(simulated_psp=True)  # a demo pays through it
    configure_logs(settings.log_format, settings.log_level)
    return _run_engine(settings, run_demo(settings, bots=args.bots))


def _engine_secret(settings: Settings) -> str:
    """The running engine's secret, never a new one: a token signed with a secret made up
    in another folder would be refused by the engine."""
    path = settings.data_dir / "secret"
    if not settings.secret and not path.exists():
        raise ValueError(
            f"no token secret at {path.resolve()}: run this in the folder where the engine "
            "runs, pass --data-dir with the engine's data dir, or set LIVECART_SECRET to "
            "the engine's secret"
        )
    return load_secret(settings)


def cmd_token(args: argparse.Namespace) -> int:
    settings = _settings(args)
    check_room_id(args.room)
    check_user_id(args.user or f"{args.role}-1")
    if args.format == "jwt":
        print(_jwt_token(settings, args))
        return 0
    token = auth.mint(
        _engine_secret(settings),
        room=args.room,
        role=Role(args.role),
        user=args.user or f"{args.role}-1",
        name=args.name,
        ttl_s=args.ttl,
    )
    print(token)
    return 0


def _jwt_token(settings: Settings, args: argparse.Namespace) -> str:
    """An HS256 JWT signed with one of LIVECART_JWT_HS256_KEYS (--kid, default the first)."""
    keys = jwt_auth.parse_hs256_keys(settings.jwt_hs256_keys)
    if not keys:
        raise ValueError(
            "--format jwt signs with LIVECART_JWT_HS256_KEYS (kid:secret,...), which is not set"
        )
    kid = args.kid or next(iter(keys))
    if kid not in keys:
        raise ValueError(f"no LIVECART_JWT_HS256_KEYS key has kid {kid!r}: {', '.join(keys)}")
    return jwt_auth.mint_hs256(
        keys[kid],
        kid,
        room=args.room,
        role=Role(args.role),
        user=args.user or f"{args.role}-1",
        name=args.name,
        ttl_s=args.ttl,
        audience=settings.jwt_audience,
    )


def redis_url_for_tools(args: argparse.Namespace) -> str:
    """--redis-url, else REDIS_URL, else the embedded Redis of a running engine."""
    settings = _settings(args)
    if settings.redis_url:
        return redis_client.check_url(settings.redis_url)
    url_file = EmbeddedRedis(settings.data_dir / "redis", binary="redis-server").url_path
    if url_file.exists():
        return url_file.read_text().strip()
    raise ValueError(
        f"no Redis to read: pass --redis-url, set REDIS_URL, or run the engine with "
        f"--data-dir {settings.data_dir} (its embedded Redis writes {url_file})"
    )


async def _audit(url: str, room: str) -> Report:
    redis = redis_client.connect(url)
    try:
        return await audit_room(redis, check_room_id(room))
    finally:
        await redis.aclose()


def cmd_audit(args: argparse.Namespace) -> int:
    report = asyncio.run(_audit(redis_url_for_tools(args), args.room))
    if args.json:
        print(orjson.dumps(report.to_wire()).decode())
    else:
        print(report.render())
    return 0 if report.ok else 1


async def _report(url: str, room: str) -> dict[str, bytes]:
    redis = redis_client.connect(url)
    try:
        return build(await load_show(redis, check_room_id(room)))
    finally:
        await redis.aclose()


def cmd_report(args: argparse.Namespace) -> int:
    files = asyncio.run(_report(redis_url_for_tools(args), args.room))
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


async def _load_orders(url: str, room: str) -> list[Order]:
    redis = redis_client.connect(url)
    try:
        return await load_orders(redis, check_room_id(room))
    finally:
        await redis.aclose()


def _export(url: str, args: argparse.Namespace) -> int:
    orders = asyncio.run(_load_orders(url, args.room))
    chunks = export(orders, args.format)
    if args.out is None:
        sys.stdout.writelines(chunks)
    else:
        with open(args.out, "w", encoding="utf-8", newline="") as handle:
            handle.writelines(chunks)
    print(f"livecart: exported {len(orders)} orders of {args.room}", file=sys.stderr)
    return 0


async def _feed(url: str, args: argparse.Namespace) -> int:
    redis = redis_client.connect(url)
    feed = OrderFeed(redis, check_room_id(args.room), args.group, args.consumer)
    try:
        await feed.ensure_group()
        events = await feed.pending(args.count) or await feed.read(args.count, args.block_ms)
        for event_id, fields in events:
            print(orjson.dumps({"id": event_id, **fields}).decode())
        if not args.no_ack:
            await feed.ack([event_id for event_id, _ in events])
    finally:
        await redis.aclose()
    return 0


def cmd_orders(args: argparse.Namespace) -> int:
    url = redis_url_for_tools(args)
    if args.orders == "export":
        return _export(url, args)
    return asyncio.run(_feed(url, args))


async def _verify_giveaway(url: str, room: str, giveaway: str) -> dict[str, Any]:
    redis = redis_client.connect(url)
    try:
        return await check_draw(redis, check_room_id(room), giveaway)
    finally:
        await redis.aclose()


def cmd_giveaway(args: argparse.Namespace) -> int:
    result = asyncio.run(_verify_giveaway(redis_url_for_tools(args), args.room, args.giveaway))
    if args.json:
        print(orjson.dumps(result).decode())
    else:
        mark = {True: "ok", False: "FAILED"}
        print(f"giveaway {result['giveaway']} in {result['room']} ({result['state']}): "
              f"{'VERIFIED' if result['ok'] else 'NOT VERIFIED'}")  # fmt: skip
        print(f"  commitment {result['commitment']}")
        print(f"  seed       {result['seed']}")
        print(f"  sha256(seed) == commitment: {mark[result['commitment_ok']]}")
        print(f"  winners recomputed from {len(result['entrants'])} sorted entrants, "
              f"{len(result['excluded'])} excluded by the limits: "
              f"{mark[result['winners_ok']]}")  # fmt: skip
        print(f"  winners    {' '.join(result['winners']) or '(none)'}")
    return 0 if result["ok"] else 1


def _add_giveaway_parser(sub: Subparsers) -> None:
    giveaway = sub.add_parser("giveaway", help="giveaways: check a recorded draw")
    giveaway_sub = giveaway.add_subparsers(dest="giveaway_command", required=True)
    verify = giveaway_sub.add_parser(
        "verify", help="recompute a closed giveaway's draw from its revealed seed; exit 1 if not"
    )
    verify.add_argument("room")
    verify.add_argument("giveaway")
    verify.add_argument("--redis-url", default=None)
    verify.add_argument("--data-dir", default=None)
    verify.add_argument("--json", action="store_true", help="print one JSON object")
    giveaway.set_defaults(func=cmd_giveaway)


# ---- reconcile: the payment provider's day against the books (docs/ledger.md) -----------


def database_url_for_tools(args: argparse.Namespace) -> str:
    """--database-url, else DATABASE_URL, else the embedded PostgreSQL of a running engine."""
    url = ledger_url_if_any(args)
    if url is not None:
        return url
    data_dir = _settings(args).data_dir
    raise ValueError(
        f"no ledger database to read: pass --database-url, set DATABASE_URL, or run the engine "
        f"with its books on and --data-dir {data_dir} (it writes {data_dir / 'postgres' / 'url'})"
    )


def ledger_url_if_any(args: argparse.Namespace) -> str | None:
    """--database-url, else DATABASE_URL, else the running engine's embedded PostgreSQL
    (its URL file in the data dir); None when there is none."""
    settings = _settings(args)
    url = getattr(args, "database_url", None) or settings.database_url
    if url:
        return database.check_url(url)
    # EmbeddedPostgres(<data-dir>/postgres).url_path, written while the server runs.
    url_file = settings.data_dir / "postgres" / "url"
    return url_file.read_text().strip() if url_file.exists() else None


@contextlib.asynccontextmanager
async def _books(args: argparse.Namespace) -> AsyncIterator[tuple[Node, asyncpg.Pool]]:
    """A node that is not serving (its Redis, scripts, payment provider and payments, built as
    the engine builds them, so a fix takes the engine's own paths) and the ledger's pool."""
    settings = _settings(args)
    redis_url, database_url = redis_url_for_tools(args), database_url_for_tools(args)
    node = Node(settings, redis_url, _engine_secret(settings))
    try:
        node.scripts.use(await bus.choose(settings.pubsub, node.redis))  # scripts publish on it
        await database.migrate(database_url)
        pool = await database.connect(database_url)
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


async def _reconcile(args: argparse.Namespace) -> books.Report:
    async with _books(args) as (node, pool):
        provider = Remedies(node.redis, pool, node.payments).provider()
        room = None if args.room is None else check_room_id(args.room)
        return await books.reconcile(node.redis, pool, provider, args.date, room)


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


def _render(report: books.Report) -> str:
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


def _add_reconcile_parser(sub: Subparsers) -> None:
    reconcile_cmd = sub.add_parser(
        "reconcile",
        help="a UTC day of the payment provider's settlement against the ledger and Redis; "
        "exit 1 while an exception is open",
    )
    reconcile_cmd.add_argument("--date", type=_utc_day, default=None, help="the UTC day")
    reconcile_cmd.add_argument("--room", default=None, help="this room only")
    reconcile_cmd.add_argument("--json", action="store_true", help="print one JSON object")
    actions = reconcile_cmd.add_subparsers(dest="reconcile_command")
    fix = actions.add_parser("fix", help="apply one exception's remedy, once, and record it")
    fix.add_argument("id", help="the exception's id, as reconcile printed it")
    fix.add_argument("--who", default=None, help="who fixes it (default: your user name)")
    fix.add_argument("--why", required=True, help="why: kept with the adjustment")
    fix.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    for parser, default in ((reconcile_cmd, None), (fix, argparse.SUPPRESS)):
        # The fix's own copies must not reset what was given before `fix` (SUPPRESS).
        parser.add_argument("--redis-url", default=default)
        parser.add_argument("--database-url", default=default,
                            help="the ledger's PostgreSQL (or DATABASE_URL)")  # fmt: skip
        parser.add_argument("--data-dir", default=default)
    reconcile_cmd.set_defaults(func=cmd_reconcile)


# ---- customers: privacy requests and retention (engine/ledger/privacy.py) ------------------


async def _customers(args: argparse.Namespace, redis_url: str,
                     database_url: str | None) -> dict[str, Any]:  # fmt: skip
    redis = redis_client.connect(redis_url)
    pool = None
    try:
        if database_url is not None:
            try:
                await database.migrate(database_url)
                pool = await database.connect(database_url, size=2)
            except (OSError, asyncpg.PostgresError, sqlalchemy.exc.SQLAlchemyError) as exc:
                raise ValueError(f"PostgreSQL at {database.redacted(database_url)}: "
                                 f"{exc}") from None  # fmt: skip
        if args.customers == "export":
            return await privacy.export(redis, pool, args.user, args.shop)
        if args.customers == "forget":
            secret = _engine_secret(_settings(args))
            return await privacy.forget(redis, pool, args.user, secret=secret, who=args.who,
                                        shop=args.shop, wait_s=args.wait_s)  # fmt: skip
        days = args.days or _settings(args).address_retention_days
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


def _add_customers_parser(sub: Subparsers) -> None:
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
    forget.add_argument("--wait-s", type=_number(0), default=60.0,
                        help="longest wait for the ledger to catch up (60)")  # fmt: skip
    for command in (export_cmd, forget):
        command.add_argument("--shop", default=None, help="one shop (its host's user id)")
    retention = customers_sub.add_parser(
        "retention", help="empty the addresses and contacts of orders closed long enough ago"
    )
    retention.add_argument("--days", type=_whole(1, 3650), default=None,
                           help="default LIVECART_ADDRESS_RETENTION_DAYS (90)")  # fmt: skip
    for command in (export_cmd, forget, retention):
        command.add_argument("--redis-url", default=None)
        command.add_argument("--database-url", default=None, help="the ledger (or DATABASE_URL)")
        command.add_argument("--data-dir", default=None)
        command.add_argument("--json", action="store_true", help="print one JSON object")
    customers.set_defaults(func=cmd_customers)


def cmd_bench(args: argparse.Namespace) -> int:
    if args.bench == "fanout":
        return bench_fanout(args)
    if args.bench == "grab":
        return bench_grab(args)
    if args.bench == "coupons":
        return bench_coupons(args)
    if args.bench == "checkout":
        return bench_checkout(args)
    if args.bench == "auction":
        return bench_auction(args)
    if args.bench == "group-buy":
        return bench_groupbuy(args)
    if args.bench == "storm":
        return bench_storm(args)
    if args.bench == "flood":
        return bench_flood(args)
    if args.bench == "ledger":
        return bench_ledger(args)
    return 2


Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def _add_orders_parser(sub: Subparsers) -> None:
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
        command.add_argument("--redis-url", default=None)
        command.add_argument("--data-dir", default=None)
    orders.set_defaults(func=cmd_orders)


def _whole(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number in [low, high], else one sentence saying which."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low or (high is not None and value > high):
            bound = f"from {low} to {high}" if high is not None else f"of at least {low}"
            raise argparse.ArgumentTypeError(f"must be a whole number {bound}, not {text!r}")
        return value

    return parse


def _number(low: float, *, above: bool = False) -> Callable[[str], float]:
    """An argparse type: a number >= low (> low when `above`), else one sentence."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (value > low if above else value >= low) or math.isinf(value):
            bound = f"above {low:g}" if above else f"of at least {low:g}"
            raise argparse.ArgumentTypeError(f"must be a number {bound}, not {text!r}")
        return value

    return parse


def _add_bench_parser(sub: Subparsers) -> None:
    bench = sub.add_parser("bench", help="benchmarks that print figures")
    bench_sub = bench.add_subparsers(dest="bench", required=True)
    fanout = bench_sub.add_parser("fanout", help="room fan-out to many viewers")
    fanout.add_argument("--viewers", type=_whole(1), default=1000)
    fanout.add_argument("--comments-per-second", type=_whole(1), default=100)
    fanout.add_argument("--seconds", type=_number(0, above=True), default=10.0)
    fanout.add_argument("--tick-ms", type=_whole(1, 5000), default=100)
    fanout.add_argument(
        "--display-rate",
        type=_whole(1, 1000),
        default=None,
        help="room display rate (default: the room default)",
    )
    fanout.add_argument("--redis-url", default=None)
    fanout.add_argument("--json", action="store_true", help="print one JSON object")
    grab = bench_sub.add_parser("grab", help="the flash-sale second: many viewers grab at once")
    grab.add_argument("--viewers", type=_whole(1), default=1000)
    grab.add_argument("--stock", type=_whole(1), default=100)
    grab.add_argument("--attempts", type=_whole(1), default=10000)
    grab.add_argument("--limit", type=_whole(1), default=1, help="per-user limit (default 1)")
    grab.add_argument("--think-ms", type=_number(0), default=0.0,
                      help="each viewer's pause between an answer and the next tap")  # fmt: skip
    grab.add_argument("--window-ms", type=_number(0), default=0.0, help="grab batching window")
    grab.add_argument("--metrics", choices=["on", "off"], default="on",
                      help="count show metrics (off: the hot-path cost baseline)")  # fmt: skip
    grab.add_argument("--compare-metrics", type=_whole(0), default=0, metavar="ROUNDS",
                      help="run ROUNDS pairs, metrics on then off, and print the cost")  # fmt: skip
    grab.add_argument("--burst", action="store_true",
                      help="every viewer taps once at the sale's start, no retry "
                           "(--attempts and --think-ms do not apply)")  # fmt: skip
    grab.add_argument("--workers", type=_whole(1), default=1,
                      help="engine processes on one port (livecart serve --workers)")  # fmt: skip
    grab.add_argument("--redis-url", default=None)
    grab.add_argument("--json", action="store_true", help="print one JSON object")
    rain = bench_sub.add_parser("coupons", help="a coupon rain: the whole room claims a drop")
    rain.add_argument("--viewers", type=_whole(1), default=1000)
    rain.add_argument("--coupons", type=_whole(1), default=100)
    rain.add_argument(
        "--attempts", type=_whole(1), default=None, help="taps in all (default: viewers)"
    )
    rain.add_argument("--redis-url", default=None)
    rain.add_argument("--json", action="store_true", help="print one JSON object")
    checkout = bench_sub.add_parser("checkout", help="orders paid end to end through the provider")
    checkout.add_argument("--orders", type=_whole(1), default=500)
    checkout.add_argument("--concurrency", type=_whole(1), default=50, help="buyers at once")
    checkout.add_argument("--redis-url", default=None)
    checkout.add_argument("--json", action="store_true", help="print one JSON object")
    auction = bench_sub.add_parser("auction", help="a contested auction over several processes")
    auction.add_argument("--bidders", type=_whole(1), default=200)
    auction.add_argument(
        "--engines", type=_whole(1), default=2, help="engine processes (one Redis)"
    )
    auction.add_argument("--seconds", type=_whole(5), default=15, help="the auction's duration")
    auction.add_argument("--think-ms", type=_number(0), default=300.0,
                         help="each bidder's longest pause before bidding again")  # fmt: skip
    auction.add_argument("--seed", type=int, default=1)
    auction.add_argument("--redis-url", default=None)
    auction.add_argument("--json", action="store_true", help="print one JSON object")
    group = bench_sub.add_parser("group-buy", help="two group-buy teams: one completes, one fails")
    group.add_argument("--team-size", type=_whole(2, 50), default=3)
    group.add_argument(
        "--window-s", type=_whole(5), default=8, help="each team's time to fill and pay"
    )
    group.add_argument("--redis-url", default=None)
    group.add_argument("--json", action="store_true", help="print one JSON object")
    for add in (_add_storm_parser, _add_flood_parser, _add_ledger_bench_parser):
        add(bench_sub)
    bench.set_defaults(func=cmd_bench)


def _add_storm_parser(bench_sub: Subparsers) -> None:
    storm = bench_sub.add_parser(
        "storm", help="a reconnection storm: an engine killed and restarted under its viewers"
    )
    storm.add_argument("--viewers", type=_whole(1), default=2000)
    storm.add_argument("--handshakes-per-s", type=_number(0, above=True), default=500.0,
                       help="the restarted engine's handshake limit (burst: twice it)")  # fmt: skip
    storm.add_argument(
        "--outage-s", type=_number(0), default=2.0, help="how long the engine is down"
    )
    storm.add_argument("--comments", type=_whole(0), default=5, help="posted during the outage")
    storm.add_argument("--redis-url", default=None)
    storm.add_argument("--json", action="store_true", help="print one JSON object")


def _add_flood_parser(bench_sub: Subparsers) -> None:
    flood = bench_sub.add_parser(
        "flood", help="bad-frame floods: a fresh viewer's join time and the engine's memory"
    )
    flood.add_argument("--flooders", type=_whole(1), default=10)
    flood.add_argument("--seconds", type=_number(1), default=10.0, help="how long they flood")
    flood.add_argument("--probes", type=_whole(1), default=5, help="idle joins measured first")
    flood.add_argument("--redis-url", default=None)
    flood.add_argument("--json", action="store_true", help="print one JSON object")


def _add_ledger_bench_parser(bench_sub: Subparsers) -> None:
    ledger = bench_sub.add_parser(
        "ledger", help="order events into PostgreSQL: the ledger writer against a raw COPY"
    )
    ledger.add_argument("--events", type=_whole(1), default=20_000, help="order events to write")
    ledger.add_argument("--rooms", type=_whole(1, 100), default=4)
    ledger.add_argument("--batch", type=_whole(1, 10_000), default=500,
                        help="the writer's batch (LIVECART_LEDGER_BATCH)")  # fmt: skip
    ledger.add_argument("--checkout-orders", type=_whole(0), default=500,
                        help="bench checkout orders for the target (0: not run)")  # fmt: skip
    ledger.add_argument("--orders-per-second", type=_number(0, above=True), default=None,
                        help="bench checkout's rate, measured before (not run then)")  # fmt: skip
    ledger.add_argument("--redis-url", default=None)
    ledger.add_argument("--database-url", default=None,
                        help="default: an embedded PostgreSQL, fsync on")  # fmt: skip
    ledger.add_argument("--json", action="store_true", help="print one JSON object")


def cmd_dev(args: argparse.Namespace) -> int:
    data_dir = Path(args.data_dir)
    cluster = DevCluster(
        data_dir, masters=args.masters, replicas_per_master=args.replicas, base_port=args.base_port
    )
    with stop_signals() as stop_requested:
        cluster.start()
        try:
            replicas = args.masters * args.replicas
            print(f"livecart dev cluster: REDIS_URL={cluster.url} ({args.masters} masters, "
                  f"{replicas} replicas; data in {data_dir})", flush=True)  # fmt: skip
            while not stop_requested.wait(0.5):
                pass
        finally:
            cluster.stop()
    return 0


def _add_dev_parser(sub: Subparsers) -> None:
    dev = sub.add_parser("dev", help="development helpers: a local Redis Cluster")
    dev_sub = dev.add_subparsers(dest="dev_command", required=True)
    cluster = dev_sub.add_parser(
        "cluster", help="run a local Redis Cluster until Ctrl-C; prints its REDIS_URL"
    )
    cluster.add_argument("--data-dir", default="./.livecart/cluster")
    cluster.add_argument("--base-port", type=int, default=None, help="default: free ports")
    cluster.add_argument("--masters", type=int, default=3)
    cluster.add_argument("--replicas", type=int, default=1, help="replicas per master")
    dev.set_defaults(func=cmd_dev)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="livecart", description="live-commerce engine")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the engine")
    _add_server_args(serve)
    serve.add_argument(
        "--workers", type=int, default=None, help="engine processes on the port (default: cores)"
    )
    serve.set_defaults(func=cmd_serve)

    demo = sub.add_parser("demo", help="run the engine with a seeded demo room and bots")
    _add_server_args(demo)
    demo.add_argument("--bots", type=int, default=8, help="simulated viewers (default 8)")
    demo.set_defaults(func=cmd_demo)

    token = sub.add_parser("token", help="mint a signed token")
    token.add_argument("--room", required=True)
    token.add_argument("--role", required=True, choices=["host", "moderator", "viewer"])
    token.add_argument("--user", default=None)
    token.add_argument("--name", default=None)
    token.add_argument(
        "--ttl",
        type=_whole(1, auth.MAX_TTL_S),
        default=auth.DEFAULT_TTL_S,
        metavar="SECONDS",
        help=f"lifetime in seconds, 1 to {auth.MAX_TTL_S} (7 days); default 43200 (12 h)",
    )
    token.add_argument("--data-dir", default=None)
    token.add_argument(
        "--format",
        choices=["lc1", "jwt"],
        default="lc1",
        help="lc1 (default): signed with the engine's secret; jwt: an HS256 JWT signed with "
        "a LIVECART_JWT_HS256_KEYS key (with `aud` when LIVECART_JWT_AUDIENCE is set)",
    )
    token.add_argument("--kid", default=None, help="--format jwt: the key's kid (default: first)")
    token.set_defaults(func=cmd_token)

    audit = sub.add_parser(
        "audit", help="check a room's stock, coupon, order and payment invariants; exit 1 if not"
    )
    audit.add_argument("room")
    audit.add_argument("--redis-url", default=None)
    audit.add_argument("--data-dir", default=None)
    audit.add_argument("--json", action="store_true", help="print one JSON object")
    audit.set_defaults(func=cmd_audit)
    report = sub.add_parser(
        "report", help="the post-live report: report.html, summary.json, metrics.csv, orders.csv"
    )
    report.add_argument("room")
    report.add_argument("--out", required=True, help="directory to write the files into")
    report.add_argument("--redis-url", default=None)
    report.add_argument("--data-dir", default=None)
    report.add_argument("--json", action="store_true", help="print one JSON object")
    report.set_defaults(func=cmd_report)

    _add_orders_parser(sub)
    _add_reconcile_parser(sub)
    _add_giveaway_parser(sub)
    _add_customers_parser(sub)
    _add_bench_parser(sub)
    add_loadtest_parser(sub)
    _add_dev_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except KeyboardInterrupt:
        return 130
    except (ValueError, LivecartError, RedisServerError, RedisConfigError) as exc:
        print(f"livecart: {exc}", file=sys.stderr)
        return 2
    except (RedisError, OSError) as exc:
        # "Could not check" is not "checked and failed" (exit 1): tools tell them apart.
        print(f"livecart: Redis: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
