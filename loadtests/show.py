"""The host's side of a load-test scenario: set up the shop, then play the scenario's
timeline (loadtests/scenarios.py) with `HostClient`, as a host in the console would."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from clients import HostClient, LivecartClientError, ViewerClient
from loadtests.scenarios import COUPON, PRODUCTS, Step

log = logging.getLogger("livecart.loadtest.show")


@dataclass
class Shop:
    products: list[dict[str, Any]]
    template: str
    sales: list[str] = field(default_factory=list)
    drops: list[str] = field(default_factory=list)
    played: list[dict[str, Any]] = field(default_factory=list)  # what happened, when
    events: list[tuple[float, str]] = field(default_factory=list)  # (Unix time, label)


async def prepare(host: HostClient) -> Shop:
    """Products (in run-of-show order) and a coupon template, made once per room."""
    products = await host.products()
    for body in PRODUCTS[len(products) :]:
        products.append(await host.create_product(**body))
    templates = await host.coupon_templates()
    template = templates[0]["id"] if templates else (await host.create_coupon(**COUPON))["id"]
    return Shop(products, template)


async def _act(host: HostClient, seat: ViewerClient, shop: Shop, step: Step) -> dict[str, Any]:
    params = step.params
    if step.action == "pin":
        product = shop.products[params["product"]]
        await host.pin_product(product["id"])
        return {"pinned": product["id"]}
    if step.action == "comment":
        await seat.comment(params["text"])
        return {"commented": params["text"]}
    if step.action == "sale":
        sku = shop.products[params["product"]]["skus"][0]["sku"]
        sale = await host.launch_sale(
            sku,
            params["allotment"],
            countdown_s=params["countdown_s"],
            hold_s=params["hold_s"],
            duration_s=max(10, int(params["duration_s"])),
            per_user_limit=1,
        )
        shop.sales.append(sale["id"])
        return {"sale": sale["id"], "starts_at": sale["starts_at"], "units": sale["allotment"]}
    if step.action == "drop":
        drop = await host.drop_coupons(
            shop.template, params["quantity"], countdown_s=params["countdown_s"], claim_window_s=600
        )
        shop.drops.append(drop["id"])
        return {"drop": drop["id"], "opens_at": drop["opens_at"], "quantity": drop["quantity"]}
    raise ValueError(f"unknown show step {step.action!r}")


def label(action: str, done: dict[str, Any]) -> str:
    """A played step in words, for the verdict's `events`."""
    if "error" in done:
        return f"{action} failed: {done['error']}"
    if action == "pin":
        return f"product {done['pinned']} pinned"
    if action == "comment":
        return f"host commented: {done['commented']}"
    if action == "sale":
        return f"flash sale {done['sale']} launched ({done['units']} units)"
    if action == "drop":
        return f"coupon drop {done['drop']} ({done['quantity']} coupons)"
    return action


async def _await_audience(seat: ViewerClient, audience: int, patience_s: float) -> float:
    """Wait until `audience` viewers besides the host's seat are online, or `patience_s`
    has passed; the seconds waited."""
    began = time.monotonic()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(patience_s):
            while seat.stats.get("online", 0) < audience + 1:  # noqa: ASYNC110 - read per tick
                await asyncio.sleep(0.1)
    waited = time.monotonic() - began
    if waited > 0.5:
        log.info("the host waited %.1f s for %d viewers to join", waited, audience)
    return waited


async def play(
    host: HostClient,
    shop: Shop,
    steps: list[Step],
    started: float,
    *,
    audience: int = 0,
    patience_s: float = 0.0,
) -> None:
    """Run the steps at their times (seconds after `started`, a `time.monotonic()`).

    A step marked `after_join` also waits, at most `patience_s` past its time, until
    `audience` viewers are in the room: on a busy machine the load generator's viewers
    join late, and a sale announced before they arrive is one they never see announced.
    The steps after it keep their spacing."""
    seat = await host.watch()
    try:
        for step in steps:
            await asyncio.sleep(max(0.0, started + step.at_s - time.monotonic()))
            if step.after_join and audience:
                started += await _await_audience(seat, audience, patience_s)
            try:
                done = await _act(host, seat, shop, step)
            except LivecartClientError as exc:
                log.warning("host step %s failed: %s", step.action, exc)
                done = {"error": str(exc)}
            shop.played.append(
                {"at_s": round(time.monotonic() - started, 2), "action": step.action, **done}
            )
            shop.events.append((time.time(), label(step.action, done)))
    finally:
        await seat.close()
