"""Structured logs carry their context (room, connection) as fields."""

from __future__ import annotations

import io
import logging
import secrets
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
import redis as sync_redis

from clients import HostClient, LivecartClientError, ShopperClient, ViewerClient
from engine.core.logs import FLOOD_BURST, FloodGuard, JsonFormatter, TextFormatter, configure
from engine.store.redis_client import redacted
from engine.store.redis_server import EmbeddedRedis
from tests.conftest import ADDRESS, SECRET, EngineFactory, token
from tests.test_api_catalog import JACKET
from tests.test_api_orders import CONTACT


def record(**extra: object) -> logging.LogRecord:
    logger = logging.getLogger("livecart.test")
    return logger.makeRecord("livecart.test", logging.INFO, __file__, 1, "viewer %s", ("joined",),
                             None, extra=extra)  # fmt: skip


def test_json_lines_carry_context_fields() -> None:
    line = orjson.loads(JsonFormatter().format(record(room="shop", conn="ab12")))
    assert line["msg"] == "viewer joined"
    assert line["level"] == "info"
    assert line["logger"] == "livecart.test"
    assert (line["room"], line["conn"]) == ("shop", "ab12")
    assert isinstance(line["ts"], float)


def test_text_lines_show_context_after_the_message() -> None:
    text = TextFormatter().format(record(room="shop"))
    assert text.endswith("livecart.test: viewer joined  [room=shop]")


def test_exceptions_are_included() -> None:
    rec = record()
    try:
        raise ValueError("boom")
    except ValueError:
        rec.exc_info = sys.exc_info()
    assert "ValueError: boom" in orjson.loads(JsonFormatter().format(rec))["exc"]


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:s3cret@db:6379/0", "redis://:***@db:6379/0"),
        ("redis://app:s3cret@db:6379", "redis://app:***@db:6379"),
        ("redis+cluster://app:p%40ss@a:7000,b:7001", "redis+cluster://app:***@a:7000,b:7001"),
        ("redis://app@db:6379", "redis://app@db:6379"),  # a user alone is no secret
        ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
    ],
)
def test_redis_urls_are_logged_without_their_password(url: str, shown: str) -> None:
    assert redacted(url) == shown


@pytest.fixture
def captured_logs() -> Iterator[list[str]]:
    """Every log line, as production writes them (JSON, DEBUG, engine/core/logs.py's levels)."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, logging.getLogger("livecart.gateway").level)
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, rec: logging.LogRecord) -> None:
            lines.append(self.format(rec))

    configure("json", "DEBUG")
    collect = Collect()
    collect.setFormatter(JsonFormatter())
    root.handlers[:] = [collect]
    yield lines
    root.handlers[:], level, gateway_level = saved
    root.setLevel(level)
    logging.getLogger("livecart.gateway").setLevel(gateway_level)
    logging.getLogger("websockets").setLevel(logging.NOTSET)


async def test_a_whole_purchase_logs_no_secret(
    captured_logs: list[str], engine_factory: EngineFactory, tmp_path: Path
) -> None:
    """Threat 20 (docs/security.md): tokens, signing secrets, the Redis password and the
    callback signatures never reach the logs, at DEBUG, through a whole purchase."""
    password = "redis-pass-" + secrets.token_hex(8)
    payment_secret = "pay-secret-" + secrets.token_hex(16)
    with EmbeddedRedis(tmp_path / "redis") as server:
        with sync_redis.Redis(port=server.port) as admin:
            admin.config_set("requirepass", password)  # an operator's secured Redis
        url = f"redis://:{password}@127.0.0.1:{server.port}/0"
        engine = await engine_factory(redis_url=url, payment_secret=payment_secret)
        room = "no-secrets"
        host_token = token(room, "host", "host-1")
        buyer_token = token(room, "viewer", "ana")
        async with HostClient(engine.base_url, room, host_token) as host:
            await host.create_room("Secrets show")
            await host.go_live()
            await host.create_product(**JACKET)
            sale = await host.launch_sale("DJ-M", 5, price=5000)
        buyer = ViewerClient(engine.ws_url, room, buyer_token)
        await buyer.connect()
        intruder = ViewerClient(engine.ws_url, room, buyer_token[:-4] + "AAAA", reconnect=False)
        with pytest.raises(LivecartClientError):
            await intruder.connect()
        await intruder.close()
        grabbed = await buyer.grab(sale["id"])
        async with ShopperClient(engine.base_url, room, buyer_token) as ana:
            order = await ana.checkout([grabbed["reservation"]], address=ADDRESS, contact=CONTACT)
            payment = await ana.start_payment(order["id"])
            assert (await ana.pay(payment["payment"]))["engine"]["outcome"] == "paid"
        await buyer.close()
        async with httpx.AsyncClient(base_url=engine.base_url) as http:  # a forged callback
            forged = await http.post("/api/payments/callback", content=b"{}", headers={
                "X-Livecart-Timestamp": str(int(time.time())), "X-Livecart-Nonce": "n" * 16,
                "X-Livecart-Signature": "f" * 64})  # fmt: skip
            assert forged.status_code == 401
        await engine.stop()
    logged = "\n".join(captured_logs)
    # The logs are there (the test sees what production writes), with the URL redacted.
    assert "engine listening" in logged
    assert f"redis://:***@127.0.0.1:{server.port}/0" in logged
    for secret in (password, payment_secret, SECRET, host_token, buyer_token, "f" * 64):
        assert secret not in logged
    for part in (host_token, buyer_token):  # nor any piece of a token (its signature)
        assert part.rsplit(".", 1)[1] not in logged


def test_the_flood_guard_writes_a_burst_then_counts_what_it_left_out() -> None:
    guard = FloodGuard(burst=3, window_s=60)
    logger = logging.getLogger("livecart.test")

    def line(at: float, level: int = logging.WARNING, msg: str = "rejected %s") -> bool:
        rec = logger.makeRecord("livecart.test", level, __file__, 1, msg, ("x",), None)
        rec.created = at
        passed = guard.filter(rec)
        return passed and getattr(rec, "suppressed", None) in (None, 7)

    assert [line(1.0 + n) for n in range(10)] == [True] * 3 + [False] * 7
    assert line(5.0, msg="another kind %s")  # each kind has its own burst
    assert line(5.0, level=logging.INFO)  # INFO and DEBUG are not limited
    # The next window: written again, and the first line says 7 were left out.
    rec = logger.makeRecord("livecart.test", logging.WARNING, __file__, 1, "rejected %s",
                            ("x",), None)  # fmt: skip
    rec.created = 70.0
    assert guard.filter(rec)
    assert rec.suppressed == 7  # type: ignore[attr-defined]


async def test_forged_callbacks_cannot_flood_the_log(engine_factory: EngineFactory) -> None:
    """Each forged payment callback used to write a warning: 300 of them now write at most
    the burst, as production's handler is configured (engine/core/logs.py)."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, logging.getLogger("livecart.gateway").level)
    out = io.StringIO()
    configure("json", "INFO", stream=out)
    try:
        engine = await engine_factory()
        async with httpx.AsyncClient(base_url=engine.base_url) as http:
            for n in range(300):
                forged = await http.post("/api/payments/callback", content=b"{}", headers={
                    "X-Livecart-Timestamp": str(int(time.time())), "X-Livecart-Nonce": f"n{n:015}",
                    "X-Livecart-Signature": "f" * 64})  # fmt: skip
                assert forged.status_code == 401
    finally:
        root.handlers[:], level, gateway_level = saved
        root.setLevel(level)
        logging.getLogger("livecart.gateway").setLevel(gateway_level)
        logging.getLogger("websockets").setLevel(logging.NOTSET)
    rejected = [line for line in out.getvalue().splitlines() if "callback rejected" in line]
    assert 1 <= len(rejected) <= FLOOD_BURST
