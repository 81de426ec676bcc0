"""Alembic's environment for the ledger: migrations run on asyncpg, one process at a time
(an advisory lock: several engine processes start together and each migrates)."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

# Any constant: the same number in every process that migrates this database.
_MIGRATION_LOCK = 7_262_027


def _migrate(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=None, transaction_per_migration=True)
    connection.execute(text(f"SELECT pg_advisory_lock({_MIGRATION_LOCK})"))
    try:
        with context.begin_transaction():
            context.run_migrations()
    finally:
        connection.execute(text(f"SELECT pg_advisory_unlock({_MIGRATION_LOCK})"))


async def _run() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    assert url is not None
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_migrate)
            await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("the ledger's migrations run online only, when an engine starts")
asyncio.run(_run())
