"""livecart viewers for locust: `locust -f loadtests/locustfile.py --host http://ENGINE`.

Configuration (the orchestrator, loadtests/run.py, sets it for the master and every
worker): LIVECART_ROOM, LIVECART_HOST_TOKEN (a host token for the room: each simulated
viewer mints its own viewer token with it), LIVECART_SCENARIO (one of
`scenarios.SCENARIOS`, default opening-rush), and for the load shape LIVECART_USERS,
LIVECART_SPAWN_RATE, LIVECART_DURATION_S (each falls back to -u, -r, -t).

Layers, as in locust's examples: the client wrapper (`EngineClient`,
loadtests/locust_client.py) reports every call; `EngineUser` here joins the room and
stays connected; `Viewer` does what `scenarios.PLANS[LIVECART_SCENARIO]` says, reacting
to what the room pushes as a phone would; `RampHoldStop` is the load shape.

Grab and claim answers (reserved, sold_out, claimed...), orders made and payment outcomes
are counted per process and summed on the master (locust's worker reports); with --csv
PREFIX the master writes them to PREFIX_outcomes.json when it quits.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import secrets
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gevent  # type: ignore[import-untyped]
import orjson
from gevent.pool import Group  # type: ignore[import-untyped]
from locust import LoadTestShape, User, constant, events, task
from locust.env import Environment
from locust.event import EventHook
from locust.exception import StopUser
from locust.runners import MasterRunner, WorkerRunner

from clients.backoff import Backoff
from clients.core import should_reconnect
from loadtests.locust_client import CallFailed, EngineClient
from loadtests.scenarios import (
    ADDRESS,
    CONTACT,
    PLANS,
    SCENARIOS,
    CommentPacer,
    Dice,
    Plan,
    Share,
)
from loadtests.slo import Stage, locust_tick, stages_from_json
from loadtests.stats import Timeline

log = logging.getLogger("livecart.loadtest")

NOT_STARTED_RETRIES = 30  # a tap a little early (clock estimate): tap again shortly
NOT_STARTED_PAUSE_S = 0.1
RETAP_PAUSE_S = (0.1, 0.5)  # between taps on a sold-out sale
JOIN_ATTEMPTS = 6  # consecutive failed joins (with backoff) before a viewer gives up


def _number(name: str) -> float | None:
    value = os.environ.get(name, "").strip()
    return float(value) if value else None


@dataclass(frozen=True, slots=True)
class Config:
    room: str
    host_token: str
    scenario: str
    users: float | None
    spawn_rate: float | None
    duration_s: float | None
    seed: int | None = None
    stages: tuple[Stage, ...] = ()

    @classmethod
    def from_env(cls) -> Config:
        scenario = os.environ.get("LIVECART_SCENARIO", "opening-rush")
        if scenario not in SCENARIOS:
            raise ValueError(f"LIVECART_SCENARIO={scenario!r}: one of {', '.join(SCENARIOS)}")
        return cls(
            room=os.environ.get("LIVECART_ROOM", ""),
            host_token=os.environ.get("LIVECART_HOST_TOKEN", ""),
            scenario=scenario,
            users=_number("LIVECART_USERS"),
            spawn_rate=_number("LIVECART_SPAWN_RATE"),
            duration_s=_number("LIVECART_DURATION_S"),
            seed=int(os.environ["LIVECART_SEED"]) if os.environ.get("LIVECART_SEED") else None,
            stages=tuple(stages_from_json(orjson.loads(os.environ["LIVECART_STAGES"])))
            if os.environ.get("LIVECART_STAGES")
            else (),
        )


CONFIG = Config.from_env()
OUTCOMES: Counter[str] = Counter()  # this process's; on the master, the workers' sum
CHECKOUTS = Share(PLANS[CONFIG.scenario].checkout_ratio)  # this process's reservations
PAYMENTS = Share(PLANS[CONFIG.scenario].pay_ratio)  # this process's orders
# Per second: calls, failures, latencies, pushes and joined viewers of this process (on the
# master, the workers' sum), for the verdict's timeline and phases.
TIMELINE = Timeline()
LIVE: set[EngineUser] = set()  # this process's users between on_start and on_stop
_NUMBERS = itertools.count()  # the users this process started: Dice(seed, "<worker>:<n>")


class EngineUser(User):
    """A viewer's phone: mints its token, connects and joins (on_start), stays connected
    (joining again with backoff after a failed join or a retryable drop, resuming from the
    last offset as clients/viewer.py does) and closes (on_stop). Subclasses act in
    `on_joined` (once, at the first welcome) and in the push callbacks, in greenlets of
    their own (`spawn`), so reactions and chatter run side by side and stop with the user."""

    abstract = True
    wait_time = constant(1.0)  # between checks of the connection

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.client: EngineClient | None = None
        self.greenlets = Group()
        self.backoff = Backoff(max_attempts=JOIN_ATTEMPTS)
        self.joined = False
        runner = environment.runner
        worker = getattr(runner, "worker_index", 0) if runner is not None else 0
        self.dice = Dice(CONFIG.seed, f"{worker}:{next(_NUMBERS)}")

    def on_start(self) -> None:
        if not (self.host and CONFIG.room and CONFIG.host_token):
            log.error("set --host, LIVECART_ROOM and LIVECART_HOST_TOKEN")
            return  # stay_connected stops the user
        client = EngineClient(self.environment, self.host, CONFIG.room, CONFIG.host_token,
                              outcomes=OUTCOMES)  # fmt: skip
        client.on_sale_announced = self.on_sale_announced
        client.on_product_pinned = self.on_product_pinned
        client.on_coupon_dropped = self.on_coupon_dropped
        client.on_notice = self.on_notice
        client.on_closed = _count_close
        self.client = client
        LIVE.add(self)
        self.join()

    def on_stop(self) -> None:
        LIVE.discard(self)
        self.greenlets.kill(block=True)
        if self.client is not None:
            self.client.close()

    def join(self) -> None:
        """Mint a token (once), connect and join; failures are reported, not raised."""
        client = self.client
        assert client is not None
        try:
            if client.token is None:
                client.mint_token(f"lt-{secrets.token_hex(6)}")
            client.connect()
            welcome = client.join(since=client.offset)
        except CallFailed:
            return
        self.backoff.reset()
        if not self.joined:
            self.joined = True
            OUTCOMES["join:joined"] += 1  # viewers that joined at least once
            self.on_joined(welcome)

    @task
    def stay_connected(self) -> None:
        client = self.client
        if client is None:
            raise StopUser()  # not configured
        if client.connected:
            return
        if client.close_code is not None and not should_reconnect(client.close_code):
            log.warning("closed with %s: this viewer stops", client.close_code)
            raise StopUser()
        try:
            gevent.sleep(self.backoff.next_delay())
        except StopIteration:
            log.warning("could not join %d times: this viewer stops", JOIN_ATTEMPTS)
            raise StopUser() from None
        self.join()

    def spawn(self, action: Callable[..., None], *args: Any) -> None:
        """Run `action(*args)` in a greenlet of this user (killed when it stops). A failed
        call ends the action: it has been reported already."""

        def guarded() -> None:
            try:
                action(*args)
            except CallFailed:
                pass
            except Exception as exc:
                log.exception("%s failed", getattr(action, "__name__", action))
                self.environment.events.user_error.fire(
                    user_instance=self, exception=exc, tb=exc.__traceback__
                )

        self.greenlets.spawn(guarded)

    # Hooks for subclasses (the callbacks run in the reader greenlet: spawn to act).
    def on_joined(self, welcome: dict[str, Any]) -> None:
        pass

    def on_sale_announced(self, entry: dict[str, Any], received_ms: float) -> None:
        pass

    def on_coupon_dropped(self, entry: dict[str, Any], received_ms: float) -> None:
        pass

    def on_product_pinned(self, product: str) -> None:
        pass

    def on_notice(self, notice: dict[str, Any]) -> None:
        pass


def _wait_until(server_ms: int, server_time: int, received_ms: float) -> float:
    """Seconds from now until the server-clock moment `server_ms`, estimating the clock
    offset from a message stamped `server_time` that arrived at local `received_ms`."""
    offset_ms = server_time - received_ms
    return max(0.0, (server_ms - offset_ms - time.time() * 1000) / 1000)


class Viewer(EngineUser):
    """A viewer doing what the scenario's `Plan` says: comments and likes at its
    intervals; grabs a sale when it starts (or at once if `grab_now`); claims a coupon
    when a drop opens; checks out and pays a share of its reservations."""

    plan: Plan = PLANS[CONFIG.scenario]

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.coupons: list[str] = []  # claimed, not yet used
        self.wants_sale = False  # grab_now, and no sale was live at join
        self.pacer = CommentPacer()

    def on_joined(self, welcome: dict[str, Any]) -> None:
        plan = self.plan
        self.pacer = CommentPacer.from_limits(welcome.get("limits", {}))
        if plan.comment_every_s:
            self.spawn(self.every, plan.comment_every_s, self.comment)
        if plan.like_every_s:
            self.spawn(self.every, plan.like_every_s, self.like)
        pinned = (welcome.get("room") or {}).get("pinned_product")
        if pinned:
            self.on_product_pinned(str(pinned))
        if plan.grab_now:
            live = [sale for sale in welcome.get("sales", []) if sale.get("state") == "live"]
            if live:
                self.spawn(self.grab, live[0]["id"], 0.0)
            else:
                self.wants_sale = True
        # What was announced before this viewer came and is still counting down is in the
        # welcome: it acts on it as on an announcement (the welcome's clock for both).
        assert self.client is not None
        server_time, received_ms = welcome["server_time"], self.client.welcomed_ms
        for sale in welcome.get("sales", []):
            if sale.get("state") == "scheduled":
                entry = {"sale": sale["id"], "starts_at": sale["starts_at"]}
                self.on_sale_announced({**entry, "server_time": server_time}, received_ms)
        for drop in welcome.get("drops", []):
            if drop.get("state") == "scheduled":
                entry = {"drop": drop["drop"], "opens_at": drop["opens_at"]}
                self.on_coupon_dropped({**entry, "server_time": server_time}, received_ms)

    def on_sale_announced(self, entry: dict[str, Any], received_ms: float) -> None:
        if self.plan.grab or self.wants_sale:
            self.wants_sale = False
            delay = _wait_until(entry["starts_at"], entry["server_time"], received_ms)
            jitter = self.dice.upto(self.plan.grab_jitter_s)
            self.spawn(self.grab, entry["sale"], delay + jitter)

    def on_product_pinned(self, product: str) -> None:
        if self.dice.chance(self.plan.click_chance):
            self.spawn(self.click, product, self.dice.between((0.2, 2.0)))

    def on_coupon_dropped(self, entry: dict[str, Any], received_ms: float) -> None:
        if self.plan.claim:
            delay = _wait_until(entry["opens_at"], entry["server_time"], received_ms)
            jitter = self.dice.upto(self.plan.grab_jitter_s)
            self.spawn(self.claim, entry["drop"], delay + jitter)

    # ---- behaviours (each in its own greenlet) --------------------------------------------

    def every(self, interval_s: tuple[float, float], action: Callable[[], None]) -> None:
        while True:
            gevent.sleep(self.dice.between(interval_s))
            with contextlib.suppress(CallFailed):  # reported; keep chatting
                action()

    def click(self, product: str, after_s: float) -> None:
        """Open the pinned product's card a moment after it appears."""
        assert self.client is not None
        gevent.sleep(after_s)
        self.client.click(product)

    def comment(self) -> None:
        """Comment, within the room's limits (waiting first if the next would be refused)."""
        assert self.client is not None
        gevent.sleep(self.pacer.wait_ms(time.time() * 1000) / 1000)
        self.client.comment(self.dice.comment())
        self.pacer.accepted(time.time() * 1000)

    def like(self) -> None:
        assert self.client is not None
        self.client.like(self.dice.likes(self.plan))

    def grab(self, sale: str, delay_s: float) -> None:
        """Tap at the start; tap again (a new request id) while sold out, up to
        `grab_taps`; check out a share of what it reserved."""
        assert self.client is not None
        gevent.sleep(delay_s)
        taps = early = 0
        while True:
            result = self.client.grab(sale)
            if result["status"] == "not_started" and early < NOT_STARTED_RETRIES:
                early += 1
                gevent.sleep(NOT_STARTED_PAUSE_S)
                continue
            taps += 1
            if result["status"] != "sold_out" or taps >= self.plan.grab_taps:
                break
            gevent.sleep(self.dice.between(RETAP_PAUSE_S))
        if result["status"] == "reserved" and CHECKOUTS.take():
            self.buy(result["reservation"])

    def claim(self, drop: str, delay_s: float) -> None:
        assert self.client is not None
        gevent.sleep(delay_s)
        for _ in range(NOT_STARTED_RETRIES + 1):
            result = self.client.claim(drop)
            if result["status"] != "not_started":
                break
            gevent.sleep(NOT_STARTED_PAUSE_S)
        if result["status"] == "claimed":
            self.coupons.append(result["coupon"])

    def buy(self, reservation: str) -> None:
        """Think, check out (with a claimed coupon if it has one), and pay a share."""
        assert self.client is not None
        gevent.sleep(self.dice.between(self.plan.think_s))
        coupons = self.coupons[:1]
        del self.coupons[:1]
        order = self.client.checkout(
            [reservation], address=ADDRESS, contact=CONTACT, coupons=coupons
        )
        if PAYMENTS.take():
            gevent.sleep(self.dice.between(self.plan.think_s))
            payment = self.client.start_payment(order["id"])
            self.client.pay(payment["payment"])


class RampHoldStop(LoadTestShape):
    """Ramp up to USERS at SPAWN_RATE, hold, stop at DURATION (seconds since the start).
    LIVECART_USERS / LIVECART_SPAWN_RATE / LIVECART_DURATION_S, else -u / -r / -t.
    With LIVECART_STAGES (a JSON list of stages, loadtests/slo.py; `--stages` sets it),
    the users follow the stages instead (`slo.locust_tick`) and the run stops after the last."""

    use_common_options = True  # -u, -r and -t are read here, not ignored with a warning

    def settings(self) -> tuple[int, float, float | None]:
        options = self.runner.environment.parsed_options if self.runner else None

        def pick(value: float | None, option: str) -> float | None:
            if value is not None:
                return value
            fallback = getattr(options, option, None)
            return float(fallback) if fallback else None

        users = pick(CONFIG.users, "num_users") or 1
        spawn_rate = pick(CONFIG.spawn_rate, "spawn_rate") or 1.0
        return int(users), spawn_rate, pick(CONFIG.duration_s, "run_time")

    def tick(self) -> tuple[int, float] | None:
        run_time_s: float = self.get_run_time()  # type: ignore[no-untyped-call]
        if CONFIG.stages:
            return locust_tick(list(CONFIG.stages), run_time_s)
        users, spawn_rate, duration_s = self.settings()
        if duration_s is not None and run_time_s >= duration_s:
            return None
        return users, spawn_rate


# ---- outcomes and the timeline: workers report theirs to the master, which writes the sum --


def _count_close(code: int | None) -> None:
    """The engine closed a viewer's connection (or it dropped: 1006)."""
    OUTCOMES[f"close:{code or 1006}"] += 1


def _on_request(request_type: str, name: str, response_time: float,
                exception: BaseException | None = None, **_: Any) -> None:  # fmt: skip
    TIMELINE.record(request_type, name, response_time or 0.0, exception is not None)


def _sample_viewers(source: str) -> None:
    """Each second, this process's joined viewers (the timeline's `viewers`)."""
    while True:
        if LIVE or TIMELINE.seconds:
            connected = sum(1 for user in list(LIVE) if user.client and user.client.connected)
            TIMELINE.sample_viewers(source, connected)
        gevent.sleep(1.0 - time.time() % 1.0 + 0.01)


def _start_sampling(environment: Environment, **_: Any) -> None:
    if not isinstance(environment.runner, MasterRunner):
        gevent.spawn(_sample_viewers, secrets.token_hex(4))


def _mark_start(environment: Environment, **_: Any) -> None:
    """The orchestrator times the host's timeline from the load's start: PREFIX_started.json."""
    prefix = getattr(environment.parsed_options, "csv_prefix", None)
    if prefix and not isinstance(environment.runner, WorkerRunner):
        with open(f"{prefix}_started.json", "wb") as out:
            out.write(orjson.dumps({"started": time.time()}))


def _report_outcomes(client_id: str, data: dict[str, Any], **_: Any) -> None:
    data["livecart_outcomes"] = dict(OUTCOMES)
    OUTCOMES.clear()
    data["livecart_timeline"] = TIMELINE.to_json()
    TIMELINE.seconds.clear()
    TIMELINE.viewers.clear()


def _collect_outcomes(client_id: str, data: dict[str, Any], **_: Any) -> None:
    OUTCOMES.update(data.get("livecart_outcomes", {}))
    TIMELINE.add(Timeline.from_json(data.get("livecart_timeline", {})))


def _write_outcomes(environment: Environment, **_: Any) -> None:
    prefix = getattr(environment.parsed_options, "csv_prefix", None)
    if prefix and not isinstance(environment.runner, WorkerRunner):
        with open(f"{prefix}_outcomes.json", "wb") as out:
            out.write(orjson.dumps(dict(sorted(OUTCOMES.items())), option=orjson.OPT_INDENT_2))
        with open(f"{prefix}_timeline.json", "wb") as out:
            out.write(orjson.dumps(TIMELINE.to_json()))


def _listen(hook: EventHook, handler: Callable[..., None]) -> None:
    hook.add_listener(handler)  # type: ignore[no-untyped-call]


_listen(events.report_to_master, _report_outcomes)
_listen(events.worker_report, _collect_outcomes)
_listen(events.quitting, _write_outcomes)
_listen(events.request, _on_request)
_listen(events.init, _start_sampling)
_listen(events.test_start, _mark_start)
