"""Where the commands that read a running engine's data find it: its Redis, its ledger's
PostgreSQL and its token secret, from the flags, the environment, or the files the engine
writes in its data dir; and one room read on a connection of its own."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.asyncio import Redis

from engine.cli.arguments import settings_from_flags
from engine.core.settings import Settings, load_secret
from engine.ledger import database
from engine.store import redis_client
from engine.store.keys import check_room_id
from engine.store.redis_server import EmbeddedRedis


def add_source_args(parser: argparse.ArgumentParser, *, database_help: str | None = None,
                    default: str | None = None) -> None:  # fmt: skip
    """--redis-url, --database-url (when `database_help` is given) and --data-dir."""
    parser.add_argument("--redis-url", default=default)
    if database_help is not None:
        parser.add_argument("--database-url", default=default, help=database_help)
    parser.add_argument("--data-dir", default=default)


def redis_url_for_tools(args: argparse.Namespace) -> str:
    """--redis-url, else REDIS_URL, else the embedded Redis of a running engine."""
    settings = settings_from_flags(args)
    if settings.redis_url:
        return redis_client.check_url(settings.redis_url)
    url_file = EmbeddedRedis(settings.data_dir / "redis", binary="redis-server").url_path
    if url_file.exists():
        return url_file.read_text().strip()
    raise ValueError(
        f"no Redis to read: pass --redis-url, set REDIS_URL, or run the engine with "
        f"--data-dir {settings.data_dir} (its embedded Redis writes {url_file})"
    )


def database_url_for_tools(args: argparse.Namespace) -> str:
    """--database-url, else DATABASE_URL, else the embedded PostgreSQL of a running engine."""
    url = ledger_url_if_any(args)
    if url is not None:
        return url
    data_dir = settings_from_flags(args).data_dir
    raise ValueError(
        f"no ledger database to read: pass --database-url, set DATABASE_URL, or run the engine "
        f"with its books on and --data-dir {data_dir} (it writes {data_dir / 'postgres' / 'url'})"
    )


def ledger_url_if_any(args: argparse.Namespace) -> str | None:
    """--database-url, else DATABASE_URL, else the running engine's embedded PostgreSQL
    (its URL file in the data dir); None when there is none."""
    settings = settings_from_flags(args)
    url = getattr(args, "database_url", None) or settings.database_url
    if url:
        return database.check_url(url)
    # EmbeddedPostgres(<data-dir>/postgres).url_path, written while the server runs.
    url_file = settings.data_dir / "postgres" / "url"
    return url_file.read_text().strip() if url_file.exists() else None


def engine_secret(settings: Settings) -> str:
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


T = TypeVar("T")


def read_room(url: str, room: str, read: Callable[[Redis, str], Awaitable[T]]) -> T:
    """`read(redis, room)` on a connection of its own, the room's id checked first."""

    async def run() -> T:
        redis = redis_client.connect(url)
        try:
            return await read(redis, check_room_id(room))
        finally:
            await redis.aclose()

    return asyncio.run(run())
