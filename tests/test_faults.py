"""Faults: an engine process killed with SIGKILL in the middle of a flash sale, with three
processes serving one port (`livecart serve --workers 3`). Its viewers reconnect to the
others, resume without gaps and keep their reservations; no unit is sold twice."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from clients import HostClient, ShopperClient, ViewerClient
from engine.core.identity import Role
from engine.rooms import auth
from tests.conftest import ADDRESS, SECRET, eventually
from tests.test_api_catalog import JACKET
from tests.test_api_orders import CONTACT
from tests.test_workers import serving_workers, workers_of

ROOM = "fault-sale"


def mint(role: Role, user: str) -> str:
    return auth.mint(SECRET, room=ROOM, role=role, user=user)


def worker_holding(workers: set[int], viewer: ViewerClient) -> int:
    """The engine process whose accepted socket is this viewer's connection."""
    assert viewer.ws is not None
    client_port = viewer.ws.local_address[1]
    for pid in workers:
        for conn in psutil.Process(pid).net_connections(kind="tcp"):
            if conn.raddr and conn.raddr.port == client_port:
                return pid
    raise AssertionError(f"no worker of {sorted(workers)} holds port {client_port}")


async def live_sale(url: str, title: str, **terms: object) -> str:
    """The room live with the jacket on a 20-unit flash sale; the sale's id."""
    async with HostClient(url, ROOM, mint(Role.HOST, "host")) as host:
        await host.create_room(title)
        await host.go_live()
        await host.create_product(**JACKET)
        sale: str = (await host.launch_sale("DJ-M", 20, price=5000, **terms))["id"]
    return sale


def has_comment(viewer: ViewerClient, text: str) -> bool:
    """Whether the viewer's copy of the room has the comment (from a tick, or from the
    replay a resume brought)."""
    return any(entry.get("text") == text for entry in viewer.entries.values())


@pytest.mark.slow
async def test_a_killed_engine_process_loses_no_viewer_and_no_unit(tmp_path: Path) -> None:
    with serving_workers(tmp_path, "--workers", "3", "--data-dir", str(tmp_path / "data")) as (
        process,
        url,
        _,
    ):
        ws_url = url.replace("http://", "ws://") + "/ws"
        sale = await live_sale(url, "Fault show")
        viewers = [ViewerClient(ws_url, ROOM, mint(Role.VIEWER, f"v{n}")) for n in range(30)]
        try:
            for viewer in viewers:
                await viewer.connect()
            early = {n: await viewers[n].grab(sale) for n in range(10)}
            assert all(answer["status"] == "reserved" for answer in early.values())
            await viewers[0].comment("before the crash")
            await eventually(lambda: all(has_comment(v, "before the crash") for v in viewers))

            # Kill the process that holds viewer 0 (the kernel spreads sockets over the
            # workers by hash, so where a viewer landed is looked up, not assumed).
            victim = worker_holding(workers_of(process.pid), viewers[0])
            os.kill(victim, signal.SIGKILL)
            # Its viewers come back through the same port (another process, or the one the
            # supervisor starts again), resuming from their last offset.
            await eventually(lambda: any(v.reconnects for v in viewers), timeout_s=20)
            speaker = next(v for v in viewers if v.reconnects)
            await speaker.comment("after the crash")
            await eventually(lambda: all(has_comment(v, "after the crash") for v in viewers),
                             timeout_s=30)  # fmt: skip
            moved = [v for v in viewers if v.reconnects]
            assert 0 < len(moved) < len(viewers)
            assert all(v.welcome.get("recovered") for v in moved)  # resumed, nothing lost
            assert all(v.gaps == 0 for v in viewers)

            # The rest of the room grabs what is left: 10 more units, 10 sold out.
            late = await asyncio.gather(*(viewers[n].grab(sale) for n in range(10, 30)))
            statuses = [answer["status"] for answer in late]
            assert (statuses.count("reserved"), statuses.count("sold_out")) == (10, 10)
            # A viewer whose process died still holds its unit, and buys it.
            assert viewers[0].reconnects  # it was on the killed process
            buyer = 0
            async with ShopperClient(url, ROOM, mint(Role.VIEWER, f"v{buyer}")) as shopper:
                order = await shopper.checkout([early[buyer]["reservation"]], address=ADDRESS,
                                               contact=CONTACT)  # fmt: skip
                payment = await shopper.start_payment(order["id"])
                assert (await shopper.pay(payment["payment"]))["engine"]["outcome"] == "paid"
            async with HostClient(url, ROOM, mint(Role.HOST, "host")) as host:
                state = await host.sale(sale)
                audit = await host.call("GET", f"/api/rooms/{ROOM}/audit")
            assert (state["available"], state["reserved"], state["sold"]) == (0, 19, 1)
            assert (audit["ok"], audit["oversell"]) == (True, 0), audit["checks"]
        finally:
            for viewer in viewers:
                await viewer.close()


@pytest.mark.slow
async def read_after_a_kill(url: str, path: str) -> Any:
    """A host read right after a worker was killed. Until the kernel drops the dead
    worker's socket from the port's group, a new connection can still land on it and be
    reset, as a client of a real deployment would see it: such a read is tried again."""
    for attempt in range(5):
        try:
            async with HostClient(url, ROOM, mint(Role.HOST, "host")) as host:
                return await host.call("GET", path)
        except httpx.TransportError:
            if attempt == 4:
                raise
            await asyncio.sleep(0.2)
    raise AssertionError("unreachable")


async def test_a_killed_engine_process_loses_none_of_the_sale_funnel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Grab attempts, their results and reservations, orders, paid orders, paid buyers and
    GMV are counted by the scripts that decide them, with the outcome: a process killed
    right after a rush, before it writes its in-memory counters (here never: a minute
    between writes), loses none of them."""
    monkeypatch.setenv("LIVECART_METRICS_FLUSH_MS", "60000")
    with serving_workers(tmp_path, "--workers", "2", "--data-dir", str(tmp_path / "data")) as (
        process,
        url,
        _,
    ):
        ws_url = url.replace("http://", "ws://") + "/ws"
        sale = await live_sale(url, "Funnel show", per_user_limit=1)
        viewers = [ViewerClient(ws_url, ROOM, mint(Role.VIEWER, f"v{n}")) for n in range(30)]
        try:
            for viewer in viewers:
                await viewer.connect()
            first = await asyncio.gather(*(viewer.grab(sale) for viewer in viewers))
            again = await asyncio.gather(*(viewer.grab(sale) for viewer in viewers[:5]))
            statuses = [answer["status"] for answer in [*first, *again]]
            assert statuses.count("reserved") == 20
            # Three buyers check out and pay (through whichever process takes each call).
            buyers = [n for n, answer in enumerate(first) if answer["status"] == "reserved"][:3]
            totals = []
            for n in buyers:
                async with ShopperClient(url, ROOM, mint(Role.VIEWER, f"v{n}")) as shopper:
                    order = await shopper.checkout([first[n]["reservation"]], address=ADDRESS,
                                                   contact=CONTACT)  # fmt: skip
                    payment = await shopper.start_payment(order["id"])
                    assert (await shopper.pay(payment["payment"]))["engine"]["outcome"] == "paid"
                    totals.append(order["pricing"]["total"])
            os.kill(worker_holding(workers_of(process.pid), viewers[0]), signal.SIGKILL)
            board = await read_after_a_kill(url, f"/api/rooms/{ROOM}/dashboard")
            assert (board["grab_attempts"], board["reservations"]) == (35, 20)
            assert (board["orders"], board["paid_orders"], board["paid_buyers"]) == (3, 3, 3)
            assert board["gmv"] == {"USD": sum(totals)}
        finally:
            for viewer in viewers:
                await viewer.close()
