"""Live polls in the browser, and the client side of the feature seam: the console and the
viewer page load each feature's module listed by `GET /features` and mount it with a ctx
(streamer_console/static/features.js, clients/web/features.js); the polls modules
(engine/features/polls/static/) are the first. Debian's Chromium driven by Playwright against
an engine started by the fixtures: the console at 1366x900, viewers on 390x844 phones. Any
JavaScript console error or page error fails a test. Screenshots go to
tests/artifacts/console/ and tests/artifacts/viewer/ (gitignored), named `poll-*`."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from playwright.async_api import BrowserContext, Page, Route, ViewportSize, expect

from clients import HostClient, LivecartClientError
from engine.server.app import Engine
from tests.conftest import RoomFactory, ViewerFactory, needs_chromium, token
from tests.pages import HTTP_ERROR_LOG, PHONE, TABLET, Console, OpenConsole, OpenViewer
from tests.test_console import BOOTS, SCARF

CONSOLE_VIEWPORT: ViewportSize = {"width": 1366, "height": 900}
QUESTION = "Which colour next?"


@pytest.fixture
async def show(engine: Engine, room_factory: RoomFactory) -> AsyncIterator[HostClient]:
    """A live room presenting the boots with a flash sale on (the Grab button shows)."""
    room = await room_factory(title="Friday drop")
    async with HostClient(engine.base_url, room, token(room, "host", "host-1")) as host:
        boots = await host.create_product(**BOOTS)
        await host.create_product(**SCARF)
        await host.pin_product(boots["id"])
        await host.launch_sale("LB-42", 20, price=9900, duration_s=600)
        yield host


def poll_card(page: Page) -> Any:
    return page.locator("#feature-polls .poll-card")


def options(page: Page) -> Any:
    return page.locator("#feature-polls .poll-opt")


async def start_poll(console: Console, question: str, choices: list[str], *,
                     duration_s: int = 120, changeable: bool = False) -> None:  # fmt: skip
    """Fill the console's poll form (adding option rows as needed) and start the poll."""
    panel = console.page.locator("#feature-polls")
    if await panel.locator("details.poll-new[open]").count() == 0:
        await panel.get_by_text("Start a poll", exact=True).click()
    await panel.locator("input[name=question]").fill(question)
    rows = panel.locator(".poll-options input")
    while await rows.count() < len(choices):
        await panel.get_by_role("button", name="+ option").click()
    for i, choice in enumerate(choices):
        await rows.nth(i).fill(choice)
    await panel.locator("input[name=duration]").fill(str(duration_s))
    await panel.locator("input[name=changeable]").set_checked(changeable)
    await panel.get_by_role("button", name="Start poll").click()
    await expect(panel.locator(".poll-running .poll-card")).to_have_count(1)


async def row_texts(panel: Any) -> list[str]:
    return [
        re.sub(r"\s+", " ", t).strip() for t in await panel.locator(".poll-row").all_inner_texts()
    ]


# ---- the seam over HTTP -----------------------------------------------------------------------


async def test_features_route_lists_the_poll_modules(engine: Engine) -> None:
    async with httpx.AsyncClient(base_url=engine.base_url) as http:
        listed = (await http.get("/features")).json()["features"]
        polls = next(f for f in listed if f["name"] == "polls")
        assert polls == {
            "name": "polls",
            "console": "/features/polls/console.js",
            "viewer": "/features/polls/viewer.js",
        }
        for url in (polls["console"], polls["viewer"]):
            module = await http.get(url)
            assert module.status_code == 200, url
            assert "javascript" in module.headers["content-type"], url
            assert "export function mount(ctx)" in module.text
            assert "innerHTML" not in module.text  # text nodes only
        for page_file in ("/console/features.js", "/live/static/features.js"):
            assert (await http.get(page_file)).status_code == 200
        index = (await http.get("/console/")).text
        assert 'id="feature-panels"' in index
        assert 'id="features"' in (await http.get("/live/r-any")).text


# ---- the whole poll: console, two phones, SDK voters -----------------------------------------


@pytest.mark.browser
@needs_chromium
async def test_live_poll_from_console_to_phones(
    open_console: OpenConsole, open_viewer: OpenViewer, show: HostClient,
    viewer_factory: ViewerFactory,
) -> None:  # fmt: skip
    room = show.room
    console = await open_console(room, viewport=CONSOLE_VIEWPORT)
    page = console.page
    panel = page.locator("#feature-polls")
    await expect(panel.get_by_role("heading", name="Live poll")).to_be_visible()
    await expect(panel.locator(".poll-empty")).to_have_text("No poll running.")
    ana = await open_viewer(room, "ana")
    bo = await open_viewer(room, "bo")
    await expect(poll_card(ana.page)).to_have_count(0)  # nothing open: no card
    await expect(ana.page.locator("#feature-polls")).to_be_hidden()
    bot = await viewer_factory(room, user="bot-0")
    await bot.comment("love these boots")
    await bot.comment("red please!")

    # The host starts a three-option poll (one row added to the two the form starts with).
    await start_poll(console, QUESTION, ["Red", "Blue", "Green"])
    running = panel.locator(".poll-running .poll-card")
    await expect(running.locator(".question")).to_have_text(QUESTION)
    await expect(running.locator(".clock")).to_have_text(re.compile(r"^[12]:\d\d left$"))
    assert await row_texts(running) == ["Red 0 · 0%", "Blue 0 · 0%", "Green 0 · 0%"]
    await expect(panel.locator("details.poll-new")).not_to_have_attribute("open", "")
    [poll] = await show.polls()
    assert (poll["question"], poll["options"], poll["state"]) == (
        QUESTION,
        ["Red", "Blue", "Green"],
        "open",
    )
    assert poll["changeable"] is False
    assert 110_000 <= poll["ends_at"] - poll["opened_at"] <= 120_000

    # Each phone shows the card: the question and one big button per option.
    for phone in (ana, bo):
        await expect(poll_card(phone.page).locator(".poll-q")).to_have_text(QUESTION)
        await expect(options(phone.page)).to_have_text(["Red0%", "Blue0%", "Green0%"])
        await expect(poll_card(phone.page)).to_have_attribute("data-view", "vote")
        await expect(phone.page.locator("#feature-polls .poll-note")).to_have_text(
            "Tap an option to vote"
        )
    for i in range(3):
        box = await options(ana.page).nth(i).bounding_box()
        assert box is not None
        assert box["height"] >= 44
        assert box["width"] >= 44
    await assert_card_clear_of_grab_and_chat(ana.page)
    await ana.shot("poll-01-phone-open")

    # Ana votes Red; Bo votes Blue. Each sees the bars with shares and their choice marked.
    await options(ana.page).nth(0).tap()
    await expect(ana.page.locator("#feature-polls .poll-note")).to_have_text(
        "Thanks, your vote is in ✓"
    )
    await expect(poll_card(ana.page)).to_have_attribute("data-view", "results")
    await expect(options(ana.page).nth(0)).to_have_class(re.compile(r"\bmine\b"))
    await expect(options(ana.page).nth(0)).to_have_attribute("aria-pressed", "true")
    await options(bo.page).nth(1).tap()
    await expect(options(bo.page).nth(1)).to_have_class(re.compile(r"\bmine\b"))
    await expect(options(ana.page)).to_have_text(["Red50%", "Blue50%", "Green0%"])
    # Votes are final here: the bars are not buttons any more.
    for i in range(3):
        await expect(options(ana.page).nth(i)).to_be_disabled()

    # Six more viewers vote over the SDK: the console's bars follow live.
    for i, option in enumerate([0, 0, 0, 1, 2, 0]):
        voter = await viewer_factory(room, user=f"fan-{i}")
        await voter.vote(poll["id"], option)
    await expect(running.locator(".poll-row")).to_have_text(
        ["Red5 · 63%", "Blue2 · 25%", "Green1 · 12%"]
    )
    await expect(running.locator(".total")).to_have_text("8 votes · votes are final")
    await expect(running.locator(".poll-row.lead .label")).to_have_text("Red")
    await expect(options(bo.page)).to_have_text(["Red63%", "Blue25%", "Green12%"])
    await expect(page.locator("#stat-online")).not_to_have_text("0")
    await console.shot("poll-01-console-running")
    await ana.shot("poll-02-phone-voted")

    # Bo tries again from a second phone (no memory of the first vote): refused, results shown.
    bo2 = await open_viewer(room, "bo")
    await expect(poll_card(bo2.page)).to_have_attribute("data-view", "vote")
    await options(bo2.page).nth(2).tap()
    note = bo2.page.locator("#feature-polls .poll-note")
    await expect(note).to_have_text("You already voted in this poll: votes are final")
    await expect(poll_card(bo2.page)).to_have_attribute("data-view", "results")
    await bo2.shot("poll-03-phone-second-vote-refused")
    bo_sdk = await viewer_factory(room, user="bo")
    with pytest.raises(LivecartClientError) as refused:
        await bo_sdk.vote(poll["id"], 2)
    assert refused.value.code == "already_voted"
    assert (await show.polls())[0]["votes"] == [5, 2, 1]

    # The host ends the poll: its final results move to "Recent results"; phones show them.
    await running.get_by_role("button", name="End poll now").click()
    await expect(panel.locator(".poll-running .poll-card")).to_have_count(0)
    recent = panel.locator(".poll-recent .poll-card")
    await expect(recent).to_have_count(1)
    await expect(recent.locator(".badge")).to_have_text("final")
    await expect(recent.locator(".poll-row")).to_have_text(
        ["Red5 · 63%", "Blue2 · 25%", "Green1 · 12%"]
    )
    # the form stays folded: the results the host just ended are in sight
    await expect(panel.locator("details.poll-new")).not_to_have_attribute("open", "")
    await expect(recent).to_be_in_viewport()
    await expect(panel.locator(".poll-empty")).to_be_visible()
    await console.shot("poll-02-console-ended")
    for phone in (ana, bo, bo2):
        await expect(phone.page.locator("#feature-polls .poll-tag")).to_have_text("Final results")
        await expect(options(phone.page)).to_have_text(["Red63%", "Blue25%", "Green12%"])
        await expect(options(phone.page).nth(0)).to_have_class(re.compile(r"\bwin\b"))
    await expect(ana.page.locator("#feature-polls .poll-note")).to_have_text(
        "Thanks for voting · 8 votes"
    )
    await assert_card_clear_of_grab_and_chat(ana.page)
    await ana.shot("poll-04-phone-final-results")
    assert (await show.polls())[0]["state"] == "closed"
    # ...for a few seconds, then the card goes.
    await expect(ana.page.locator("#feature-polls")).to_be_hidden(timeout=15_000)


async def assert_card_clear_of_grab_and_chat(page: Page) -> None:
    """The poll card lies over the lower stream: under the title and stats, inside the
    stage, so it covers neither the Grab button nor the chat, which keeps its height."""
    boxes = {}
    for name in ("#feature-polls", "#top .who", "#stage", "#grab", "#chat", "#bar"):
        box = await page.locator(name).bounding_box()
        assert box is not None, name
        boxes[name] = box
    card, title, stage = boxes["#feature-polls"], boxes["#top .who"], boxes["#stage"]
    assert card["y"] >= title["y"] + title["height"], (card, title)
    assert card["y"] + card["height"] <= stage["y"] + stage["height"], (card, stage)
    assert stage["y"] + stage["height"] <= boxes["#grab"]["y"]
    assert boxes["#chat"]["height"] >= 150, boxes["#chat"]
    assert boxes["#bar"]["y"] + boxes["#bar"]["height"] <= PHONE["height"] + 1
    # every option is reachable inside the card (scrolled into view if the card scrolls)
    for i in range(await options(page).count()):
        await options(page).nth(i).scroll_into_view_if_needed()
        await expect(options(page).nth(i)).to_be_in_viewport()


# ---- changeable polls, anonymous viewers, the form ----------------------------------------------


@pytest.mark.browser
@needs_chromium
async def test_changeable_poll_lets_a_viewer_change_their_vote(
    open_console: OpenConsole, open_viewer: OpenViewer, show: HostClient
) -> None:
    console = await open_console(show.room, viewport=CONSOLE_VIEWPORT)
    await start_poll(console, "Boots or scarf first?", ["Boots", "Scarf"], changeable=True)
    ana = await open_viewer(show.room, "ana")
    await options(ana.page).nth(0).tap()
    await expect(options(ana.page).nth(0)).to_have_class(re.compile(r"\bmine\b"))
    note = ana.page.locator("#feature-polls .poll-note")
    await expect(note).to_have_text(re.compile("tap another option to change"), timeout=8000)
    await expect(options(ana.page).nth(0)).to_be_disabled()  # the choice itself
    await expect(options(ana.page).nth(1)).to_be_enabled()
    await options(ana.page).nth(1).tap()
    await expect(note).to_have_text("Vote changed ✓")
    await expect(options(ana.page).nth(1)).to_have_class(re.compile(r"\bmine\b"))
    await expect(options(ana.page)).to_have_text(["Boots0%", "Scarf100%"])
    running = console.page.locator("#feature-polls .poll-running .poll-card")
    await expect(running.locator(".poll-row")).to_have_text(["Boots0 · 0%", "Scarf1 · 100%"])
    await expect(running.locator(".total")).to_have_text("1 vote · changeable")
    assert (await show.polls())[0]["votes"] == [0, 1]
    # A reload remembers the choice (kept on the device).
    await ana.page.reload()
    await expect(options(ana.page).nth(1)).to_have_class(re.compile(r"\bmine\b"))


LONG_OPTIONS = [
    "The oversized denim jacket with the sherpa collar",
    "Leather Chelsea boots in dark brown",
    "A chunky hand-knitted wool scarf",
    "Vintage wash straight-leg jeans",
    "The canvas weekender bag with leather straps",
    "Something else: tell us in the comments!",
]


@pytest.mark.browser
@needs_chromium
async def test_a_six_option_poll_stays_over_the_stream(
    open_console: OpenConsole, open_viewer: OpenViewer, show: HostClient
) -> None:
    """Six long options (one per row) do not fit over the stream: the card scrolls inside
    it, and the last option can still be reached and voted for."""
    question = "Which of these should we put on sale next? Vote now, the winner drops tonight!"
    console = await open_console(show.room, viewport=CONSOLE_VIEWPORT)
    await start_poll(console, question, LONG_OPTIONS, duration_s=300)
    await expect(console.page.locator("#feature-polls .poll-row")).to_have_count(6)
    await console.shot("poll-03-console-six-options")
    ana = await open_viewer(show.room, "ana")
    await expect(options(ana.page)).to_have_count(6)
    await assert_card_clear_of_grab_and_chat(ana.page)
    await ana.page.locator("#feature-polls").evaluate("card => { card.scrollTop = 0; }")
    await ana.shot("poll-06-phone-six-options")
    await options(ana.page).nth(5).scroll_into_view_if_needed()
    await options(ana.page).nth(5).tap()
    await expect(options(ana.page).nth(5)).to_have_class(re.compile(r"\bmine\b"))
    await expect(options(ana.page).nth(5)).to_have_text(re.compile(r"100%$"))
    await assert_card_clear_of_grab_and_chat(ana.page)
    await ana.shot("poll-07-phone-six-options-voted")
    assert (await show.polls())[0]["votes"] == [0, 0, 0, 0, 0, 1]


@pytest.mark.browser
@needs_chromium
async def test_anonymous_viewer_sees_results_and_is_asked_to_sign_in(
    open_viewer: OpenViewer, show: HostClient, viewer_factory: ViewerFactory
) -> None:
    poll = await show.open_poll("Next drop?", ["Hoodies", "Sneakers", "Caps", "Bags"])
    anonymous = await open_viewer(show.room)
    card = poll_card(anonymous.page)
    await expect(card).to_have_attribute("data-view", "results")
    await expect(anonymous.page.locator("#feature-polls .poll-note")).to_have_text(
        "Sign in to vote · 0 votes"
    )
    for i in range(4):
        await expect(options(anonymous.page).nth(i)).to_be_disabled()
    voter = await viewer_factory(show.room, user="fan-1")
    await voter.vote(poll["id"], 3)
    await expect(options(anonymous.page)).to_have_text(
        ["Hoodies0%", "Sneakers0%", "Caps0%", "Bags100%"]
    )
    await expect(anonymous.page.locator("#feature-polls .poll-note")).to_have_text(
        "Sign in to vote · 1 vote"
    )
    # Short options sit two per row: four buttons in two rows.
    tops = [
        (await options(anonymous.page).nth(i).bounding_box() or {"y": -1})["y"] for i in range(4)
    ]
    assert tops[0] == tops[1]
    assert tops[2] == tops[3] > tops[0]
    await anonymous.shot("poll-05-phone-anonymous")
    await show.close_poll(poll["id"])
    await expect(anonymous.page.locator("#feature-polls .poll-tag")).to_have_text("Final results")


@pytest.mark.browser
@needs_chromium
async def test_console_poll_form_checks_and_limits_options(
    open_console: OpenConsole, show: HostClient
) -> None:
    console = await open_console(show.room, viewport=CONSOLE_VIEWPORT)
    panel = console.page.locator("#feature-polls")
    await expect(panel.locator("details.poll-new")).not_to_have_attribute("open", "")  # folded
    await panel.get_by_text("Start a poll", exact=True).click()
    rows = panel.locator(".poll-options li")
    add = panel.get_by_role("button", name="+ option")
    await expect(rows).to_have_count(2)
    await expect(panel.get_by_role("button", name="remove option 1")).to_be_hidden()  # 2 minimum
    for _ in range(4):
        await add.click()
    await expect(rows).to_have_count(6)
    await expect(add).to_be_disabled()  # 6 maximum
    await panel.get_by_role("button", name="remove option 3").click()
    await expect(rows).to_have_count(5)
    await expect(add).to_be_enabled()
    await expect(panel.locator(".poll-options input").nth(2)).to_have_attribute(
        "placeholder", "Option 3"
    )
    status = panel.locator(".poll-status")
    await panel.locator("input[name=question]").fill("Pick one")
    await panel.locator(".poll-options input").nth(0).fill("Same")
    await panel.locator(".poll-options input").nth(1).fill("Same")
    await panel.get_by_role("button", name="Start poll").click()
    await expect(status).to_have_text("Two options are the same.")
    await panel.locator(".poll-options input").nth(1).fill("")
    await panel.get_by_role("button", name="Start poll").click()
    await expect(status).to_have_text("Give at least 2 options.")
    assert await show.polls() == []
    # A running poll can also be opened from elsewhere (the SDK): the panel shows it.
    await show.open_poll("From the SDK", ["Yes", "No"], duration_s=30)
    await expect(panel.locator(".poll-running .poll-card .question")).to_have_text("From the SDK")
    await expect(panel.locator(".badge.live").first).to_be_visible()
    # On a tablet (two columns) the panel shares the first column and scrolls on its own.
    await console.page.set_viewport_size(TABLET)
    await expect(panel.get_by_role("button", name="End poll now")).to_be_visible()
    await console.shot("poll-04-console-tablet")


@pytest.mark.browser
@needs_chromium
async def test_moderator_sees_the_poll_without_host_controls(
    open_console: OpenConsole, show: HostClient
) -> None:
    poll = await show.open_poll(QUESTION, ["Red", "Blue"])
    console = await open_console(show.room, "moderator", viewport=CONSOLE_VIEWPORT)
    panel = console.page.locator("#feature-polls")
    await expect(panel.locator(".poll-running .poll-card .question")).to_have_text(QUESTION)
    await expect(panel.locator("form")).to_have_count(0)
    await expect(panel.get_by_role("button", name="End poll now")).to_have_count(0)
    assert "null" not in await panel.inner_text()
    await show.close_poll(poll["id"])
    await expect(panel.locator(".poll-recent .poll-card")).to_have_count(1)
    await expect(panel.locator(".poll-empty")).to_have_text(
        "No poll running. Only the host starts polls."
    )
    await console.shot("poll-05-console-moderator")


# ---- the seam in the pages: ctx, events, and modules that fail -----------------------------------

PROBE = """
export function mount(ctx) {
  const log = { room: ctx.room, role: ctx.role, welcomes: 0, ticks: 0, entries: [],
    parent: ctx.root.parentElement && ctx.root.parentElement.id, welcomeRooms: [] };
  window.__probe = log;
  window.__probeCtx = ctx;
  ctx.root.append(ctx.el("p", {}, "probe mounted"));
  ctx.on("welcome", (w) => { log.welcomes += 1; log.welcomeRooms.push(w.room.id); });
  ctx.on("tick", () => { log.ticks += 1; });
  const off = ctx.on("entry", (e) => { log.entries.push(e.kind); });
  window.__probeOff = off;
}
"""
BROKEN = "export function mount() { throw new Error('broken on purpose'); }"
FAKES = "#feature-broken, #feature-missing, #feature-nopage"
FEATURE_FAILED = re.compile(r"^feature (broken|missing): its (console|viewer) module failed")


async def fake_features(context: BrowserContext) -> None:
    """/features lists three made-up features before the engine's: one that throws in mount,
    one whose module is missing, and a probe that records what its ctx gives it."""

    async def listing(route: Route) -> None:
        real = await route.fetch()
        body = await real.json()
        fakes: list[dict[str, str]] = [
            {"name": name, "console": f"/features/{name}/console.js",
             "viewer": f"/features/{name}/viewer.js"}
            for name in ("broken", "missing", "probe")
        ]  # fmt: skip
        fakes.append({"name": "nopage"})  # a feature with no web modules: nothing to load
        await route.fulfill(response=real, body=json.dumps({"features": fakes + body["features"]}))

    async def module(route: Route) -> None:
        url = route.request.url
        if "/features/probe/" in url or "/features/broken/" in url:
            source = PROBE if "/probe/" in url else BROKEN
            await route.fulfill(status=200, content_type="text/javascript", body=source)
        else:
            await route.fulfill(status=404, content_type="text/plain", body="not found")

    await context.route(re.compile(r"/features$"), listing)
    await context.route(re.compile(r"/features/(probe|broken|missing)/"), module)


async def probe(page: Page, expression: str) -> Any:
    """`expression` evaluated in the page, with `ctx` the probe's and `log` its record."""
    return await page.evaluate(
        "async () => { const ctx = window.__probeCtx, log = window.__probe; "
        f"return {expression}; }}"
    )


async def refusal(page: Page, call: str) -> str:
    """The error code `call` (a promise from the probe's ctx) rejects with, else "ok"."""
    code: str = await probe(page, f"{call}.then(() => 'ok', (e) => e.code)")
    return code


@pytest.mark.browser
@needs_chromium
async def test_console_seam_mounts_modules_with_their_ctx(
    open_console: OpenConsole, show: HostClient, viewer_factory: ViewerFactory
) -> None:
    console = await open_console(show.room, viewport=CONSOLE_VIEWPORT, setup=fake_features,
                                 allowed=[FEATURE_FAILED, HTTP_ERROR_LOG])  # fmt: skip
    page = console.page
    # The broken and the missing modules are skipped; the probe and the polls still mount.
    await expect(page.locator("#feature-panels > section")).to_have_count(2)
    await expect(page.locator("#feature-probe")).to_have_text("probe mounted")
    await expect(
        page.locator("#feature-polls").get_by_role("heading", name="Live poll")
    ).to_be_visible()
    await expect(page.locator(FAKES)).to_have_count(0)
    log = await probe(page, "log")
    assert (log["room"], log["role"], log["parent"]) == (show.room, "host", "feature-panels")
    assert log["welcomes"] == 1  # the welcome it missed while loading
    assert log["welcomeRooms"] == [show.room]
    # The console still works around them.
    await expect(page.locator("#room-state")).to_have_text("live")
    # api: the room's routes with the host's token; refusals carry the engine's code.
    polls = await probe(page, "(await ctx.api('GET', '/polls')).polls.length")
    assert polls == 0
    room = await probe(page, "(await ctx.api('GET', `/api/rooms/${log.room}`)).id")
    assert room == show.room
    code = await refusal(page, "ctx.api('POST', '/polls', {question: ''})")
    assert code == "invalid_field"
    # send: a frame with a fresh id; its ack, or its error's code.
    ack = await probe(page, "await ctx.send({type: 'comment', text: 'from the seam'})")
    assert ack["type"] == "ack"
    assert ack["ref"]
    code = await refusal(page, "ctx.send({type: 'vote', poll: 'q99', option: 0})")
    assert code == "poll_not_found"
    # on: entries and ticks as they come; another welcome after a resume.
    viewer = await viewer_factory(show.room, user="fan-1")
    await viewer.comment("hello seam")
    await show.open_poll(QUESTION, ["Red", "Blue"])
    await page.wait_for_function(
        "['poll_opened', 'comment'].every((kind) => window.__probe.entries.includes(kind))"
    )
    assert (await probe(page, "log.ticks")) > 0
    await page.click("#reconnect")
    await page.wait_for_function("window.__probe.welcomes === 2")
    await expect(page.locator("#conn")).to_have_text("connected")
    # Unsubscribing stops the events.
    await probe(page, "window.__probeOff()")
    entries = await probe(page, "log.entries.length")
    await viewer.comment("still after")
    await expect(page.locator("#feed .comment", has_text="still after")).to_have_count(1)
    assert await probe(page, "log.entries.length") == entries
    # Sign out, sign in: panels are torn down and mounted anew (once each). A request the
    # sign-out cuts off before its answer, and one sent after, fail with "disconnected".
    code = await probe(page, "(() => { const sent = ctx.send({type: 'ping'}); "
                             "document.querySelector('#sign-out').click(); "
                             "return sent.then(() => 'ok', (e) => e.code); })()")  # fmt: skip
    assert code == "disconnected"
    await expect(page.locator("#feature-panels > section")).to_have_count(0)
    assert await refusal(page, "ctx.send({type: 'ping'})") == "disconnected"
    await page.fill("#token", token(show.room, "host", "host-1"))
    await page.click("#signin-button")
    await expect(page.locator("#feature-panels > section")).to_have_count(2)
    await expect(page.locator("#feature-polls .poll-running .poll-card")).to_have_count(1)


@pytest.mark.browser
@needs_chromium
async def test_viewer_seam_mounts_modules_with_their_ctx(
    open_viewer: OpenViewer, show: HostClient, viewer_factory: ViewerFactory
) -> None:
    phone = await open_viewer(show.room, "ana", setup=fake_features,
                             allowed=[FEATURE_FAILED, HTTP_ERROR_LOG])  # fmt: skip
    page = phone.page
    await expect(page.locator("#features > article")).to_have_count(2)
    await expect(page.locator("#feature-probe")).to_have_text("probe mounted")
    await expect(page.locator(FAKES)).to_have_count(0)
    log = await probe(page, "log")
    assert (log["room"], log["role"], log["parent"]) == (show.room, "viewer", "features")
    assert log["welcomes"] == 1
    # The page still works around the failed modules: comments go out.
    await page.fill("#comment-input", "still works")
    await page.click("#send")
    await expect(page.locator("#comments li.mine", has_text="still works")).to_have_count(1)
    code = await refusal(page, "ctx.api('GET', '/polls/q42')")
    assert code == "poll_not_found"
    assert await probe(page, "(await ctx.api('GET', '/polls')).polls.length") == 0
    ack = await probe(page, "await ctx.send({type: 'comment', text: 'from the seam'})")
    assert ack["type"] == "ack"
    code = await refusal(page, "ctx.send({type: 'vote', poll: 'q99', option: 0})")
    assert code == "poll_not_found"
    await show.open_poll(QUESTION, ["Red", "Blue"])
    await page.wait_for_function("window.__probe.entries.includes('poll_opened')")
    await expect(poll_card(page)).to_be_visible()
    await phone.hook("dropConnection(300)")
    await page.wait_for_function("window.__probe.welcomes === 2")
    await expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    # Anonymous viewers get role "anonymous"; their sends are refused.
    anonymous = await open_viewer(show.room, setup=fake_features,
                                 allowed=[FEATURE_FAILED, HTTP_ERROR_LOG])  # fmt: skip
    await expect(anonymous.page.locator("#feature-probe")).to_have_text("probe mounted")
    assert await probe(anonymous.page, "log.role") == "anonymous"
    code = await refusal(anonymous.page, "ctx.send({type: 'vote', poll: 'q1', option: 0})")
    assert code == "forbidden"
