"""The ledger's PostgreSQL: its URL, schema migrations (Alembic) and the connection pool.

`DATABASE_URL` names an existing server (`postgresql://user:password@host:port/db`);
unset, the engine runs a private one in its data dir (engine/store/postgres_server.py).
Migrations run at every start of an engine process, under an advisory lock (several
processes start at once; migrations/env.py).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from alembic import command
from alembic.config import Config
from asyncpg.pool import PoolConnectionProxy

MIGRATIONS = Path(__file__).parent / "migrations"
SCHEMES = ("postgresql", "postgres")
# A connection of its own, or one lent by the pool.
Connection = asyncpg.Connection | PoolConnectionProxy
# Where the ledger is read: the pool, or one connection (a fix's: its transaction's view).
Db = asyncpg.Pool | Connection


def check_url(url: str) -> str:
    """A PostgreSQL URL, or ValueError saying what is wrong (never echoing a password)."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES or not parts.hostname or not parts.path.strip("/"):
        raise ValueError("DATABASE_URL must look like postgresql://user:password@host:5432/db")
    return url


def redacted(url: str) -> str:
    """The URL without its password, for logs and errors."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    sqlalchemy_url = "postgresql+asyncpg://" + url.split("://", 1)[1]
    # ConfigParser interpolates %: a password holding one must be written %%.
    config.set_main_option("sqlalchemy.url", sqlalchemy_url.replace("%", "%%"))
    return config


def migrate_now(url: str) -> None:
    """Bring the schema to the newest revision (blocking: call it off the event loop)."""
    command.upgrade(_alembic_config(url), "head")


async def migrate(url: str) -> None:
    await asyncio.to_thread(migrate_now, url)


async def connect(url: str, *, size: int = 4) -> asyncpg.Pool:
    """A small pool: the writer holds one connection a batch, the API's reads the rest."""
    pool: asyncpg.Pool = await asyncpg.create_pool(
        url, min_size=1, max_size=size, command_timeout=30, timeout=10
    )
    return pool


async def migrate_and_connect(url: str, *, size: int = 4) -> asyncpg.Pool:
    """The schema brought to the newest revision, then a pool: how every user opens the books."""
    await migrate(url)
    return await connect(url, size=size)
