"""engine/store/postgres_server.py: the private PostgreSQL of `serve` and `demo`, and the
engine that starts one when it has no DATABASE_URL."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from engine.server.app import Engine
from engine.store.postgres_server import (
    EmbeddedPostgres,
    PostgresServerError,
    bundled_postgres_bin,
    find_postgres_bin,
)
from engine.store.redis_server import EmbeddedRedis
from tests.conftest import make_settings


@pytest.fixture
def reachable() -> Iterator[Path]:
    """A folder every user may pass through (the server may run as `postgres`)."""
    folder = Path(tempfile.mkdtemp(prefix="livecart-pg-test-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


async def one(url: str, sql: str) -> object:
    connection = await asyncpg.connect(url)
    try:
        return await connection.fetchval(sql)
    finally:
        await connection.close()


@pytest.mark.parametrize("binaries", ["found", "wheel"])
async def test_it_starts_keeps_its_data_and_says_where_it_is(
    reachable: Path, binaries: str
) -> None:
    bin_dir = find_postgres_bin() if binaries == "found" else bundled_postgres_bin()
    assert bin_dir is not None, "the pgserver wheel is in the lock"
    server = EmbeddedPostgres(reachable / "pg", bin_dir=bin_dir, fsync=False)
    await asyncio.to_thread(server.start)  # as the engine starts it: off the event loop
    try:
        assert server.url_path.read_text().strip() == server.url
        assert (reachable / "pg" / "password").stat().st_mode & 0o777 == 0o600
        connection = await asyncpg.connect(server.url)
        await connection.execute("CREATE TABLE kept (n int); INSERT INTO kept VALUES (7)")
        await connection.close()
        # A password is required: the same URL without it is refused.
        with pytest.raises(asyncpg.InvalidPasswordError):
            await asyncpg.connect(server.url.replace(server.url.split(":")[2].split("@")[0], "x"))
        with pytest.raises(PostgresServerError, match="in use by another engine"):
            EmbeddedPostgres(reachable / "pg", bin_dir=bin_dir).start()
    finally:
        server.stop()
    assert not server.url_path.exists()
    again = EmbeddedPostgres(reachable / "pg", bin_dir=bin_dir, fsync=False)
    await asyncio.to_thread(again.start)
    try:
        assert await one(again.url, "SELECT n FROM kept") == 7
    finally:
        again.stop()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root's server runs as another user")
def test_run_by_root_it_says_when_its_user_cannot_reach_the_folder(tmp_path: Path) -> None:
    # pytest's temp dirs are root's alone (0700): the one above the data dir is in the way.
    data_dir = tmp_path / "data"
    with pytest.raises(PostgresServerError, match=f"cannot reach .*: {tmp_path} lets no other"):
        EmbeddedPostgres(data_dir / "postgres").start()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root's server runs as another user")
async def test_run_by_root_it_opens_only_its_own_data_dir_for_passing(reachable: Path) -> None:
    """`make demo` as root: ./.livecart is 0700; its server's user may pass, not list."""
    data_dir = reachable / ".livecart"
    data_dir.mkdir(mode=0o700)
    (data_dir / "secret").write_text("s")
    (data_dir / "secret").chmod(0o600)
    server = EmbeddedPostgres(data_dir / "postgres", fsync=False)
    await asyncio.to_thread(server.start)
    try:
        assert await one(server.url, "SELECT 1") == 1
    finally:
        server.stop()
    assert data_dir.stat().st_mode & 0o777 == 0o710
    assert (data_dir / "secret").stat().st_mode & 0o777 == 0o600


async def test_an_engine_without_a_database_url_keeps_its_books_in_its_data_dir(
    reachable: Path,
) -> None:
    # Its own Redis too: the ledger copies every room of its Redis, and the session's holds
    # every other test's.
    redis = EmbeddedRedis(reachable / "redis")
    await asyncio.to_thread(redis.start)
    engine = Engine(make_settings(reachable, redis_url=redis.url, ledger=True))
    await engine.start()
    try:
        assert (reachable / "data" / "postgres" / "url").exists()
        async with httpx.AsyncClient(base_url=engine.base_url) as http:
            ready = (await http.get("/readyz")).json()
        assert ready["ok"] is True
        assert ready["ledger"]["lag_events"] == 0
        assert ready["ledger"]["error"] is None
    finally:
        await engine.stop()
        redis.stop()
    assert not (reachable / "data" / "postgres" / "url").exists()
