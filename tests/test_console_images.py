"""Product pictures from the console (streamer_console/static/images.js): the host picks a
file in the product form, the console checks it as the engine will and uploads it
(POST /api/rooms/{room}/images), and the product names the URL; the picture then shows in
the run of show, on the sale card and on the viewers' phones. Chromium driven by
Playwright against an engine started by the fixtures."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from playwright.async_api import Page, expect

from clients import HostClient
from engine.server.app import Engine
from tests.conftest import needs_chromium
from tests.pages import OpenConsole, OpenViewer
from tests.test_images import png

PICTURE = png(96, 96, seed=40)


def file(name: str, mime: str, data: bytes) -> dict[str, Any]:
    return {"name": name, "mimeType": mime, "buffer": data}


async def fill_new_product(page: Page, title: str, sku: str, price: str) -> None:
    await page.click("#product-editor summary")
    await page.fill('#product-form [name="title"]', title)
    await page.fill('#sku-rows [name="sku"]', sku)
    await page.fill('#sku-rows [name="price"]', price)


@pytest.mark.browser
@needs_chromium
async def test_a_picture_from_the_form_shows_everywhere(
    open_console: OpenConsole, open_viewer: OpenViewer, room: str, host: HostClient,
    engine: Engine,
) -> None:  # fmt: skip
    console = await open_console(room)
    page = console.page
    await fill_new_product(page, "Canvas tote", "CT-1", "19.90")
    await page.set_input_files("#product-image", file("tote.png", "image/png", PICTURE))
    await expect(page.locator("#product-image-preview img")).to_be_visible()  # a preview
    await page.click("#product-save")
    await console.feedback("Create “Canvas tote”: done")

    (product,) = (await host.call("GET", f"/api/rooms/{room}/products"))["products"]
    (url,) = product["images"]
    assert re.fullmatch(r"/images/[0-9a-f]{64}\.png", url), url
    async with httpx.AsyncClient(base_url=engine.base_url) as http:
        served = await http.get(url)
    assert served.content == PICTURE
    await expect(page.locator("#lineup li .thumb")).to_have_attribute("src", url)
    # The form is back on a new product: no picture carried over.
    await expect(page.locator("#product-image-preview .thumb.empty")).to_have_count(1)

    # On the sale card, and on a viewer's phone once the product is on screen.
    await host.launch_sale("CT-1", 30)
    await expect(page.locator("#sales .sale .thumb")).to_have_attribute("src", url)
    await host.pin_product(product["id"])
    phone = (await open_viewer(room, "fan-1")).page
    await expect(phone.locator("#sale-img")).to_have_attribute("src", url)
    await console.shot("picture-on-sale-card")

    # Edit: remove the picture.
    await page.locator("#lineup li button.edit").click()
    await expect(page.locator("#product-image-preview img.thumb")).to_have_attribute("src", url)
    await page.click("#product-image-remove")
    await page.click("#product-save")
    await console.feedback("Save “Canvas tote”: done")
    (product,) = (await host.call("GET", f"/api/rooms/{room}/products"))["products"]
    assert product["images"] == []
    await expect(page.locator("#lineup li .thumb.empty")).to_have_count(1)


@pytest.mark.browser
@needs_chromium
async def test_a_file_that_is_not_a_picture_is_refused_before_upload(
    open_console: OpenConsole, room: str, host: HostClient
) -> None:
    console = await open_console(room)
    page = console.page
    await fill_new_product(page, "Canvas tote", "CT-1", "19.90")
    uploads: list[str] = []
    page.on("request", lambda r: uploads.append(r.url) if r.url.endswith("/images") else None)

    await page.set_input_files("#product-image", file("notes.txt", "text/plain", b"hello"))
    await expect(page.locator("#product-image")).to_have_attribute("aria-invalid", "true")
    await expect(page.locator(".field-error")).to_have_text("A PNG, JPEG, WebP or GIF picture")
    await page.click("#product-save")
    await expect(page.locator("#product-image")).to_be_focused()
    big = b"\x89PNG\r\n\x1a\n" + bytes(5 * 1024 * 1024)
    await page.set_input_files("#product-image", file("huge.png", "image/png", big))
    await expect(page.locator(".field-error")).to_have_text("At most 5 MB")
    await page.click("#product-save")
    assert uploads == []
    assert (await host.call("GET", f"/api/rooms/{room}/products"))["products"] == []
