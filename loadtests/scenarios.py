"""The load-test scenarios: what each simulated viewer does (`Plan`) and what the host does
when (`timeline`). Both generators (locust and asyncio) read these, so a scenario means
the same thing whichever one runs it.

Viewers act on what the room pushes, like real phones: they grab when a sale they saw
announced starts (by the server clock in the announcement), claim when a drop they saw
opens, and check out what they reserved. The host's side is a timeline of actions
relative to the start of the run, played by the orchestrator with `HostClient`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

SCENARIOS = (
    "opening-rush",
    "comment-storm",
    "flash-sale",
    "coupon-rain",
    "checkout-wave",
    "full-show",
)

# Request names every generator reports (request_type, name). PUSH entries are server-
# pushed messages, their "response time" the push latency (receipt - server timestamp).
REQUESTS = {
    ("HTTP", "token"),
    ("WS", "connect"),
    ("WS", "join"),
    ("WS", "comment"),
    ("WS", "like"),
    ("WS", "grab"),
    ("WS", "claim"),
    ("WS", "click"),
    ("HTTP", "checkout"),
    ("HTTP", "payment"),
    ("HTTP", "pay"),
    ("PUSH", "comment"),
    ("PUSH", "stock"),
    ("PUSH", "announcement"),
}

ADDRESS = {
    "name": "Load Tester",
    "line1": "1 Load St",
    "city": "Testville",
    "postal_code": "12345",
    "country": "US",
}
CONTACT = {"email": "loadtest@example.com"}
COMMENTS = [
    "hi!",
    "love it",
    "price?",
    "does it come in blue?",
    "❤️",
    "ship to Canada?",
    "just joined",
    "size guide please",
    "wow",
    "take my money",
]


@dataclass(frozen=True, slots=True)
class Plan:
    """One simulated viewer's behaviour in a scenario (intervals in seconds, uniform)."""

    comment_every_s: tuple[float, float] | None = None  # None: never comments
    like_every_s: tuple[float, float] | None = None
    likes_per_tap: tuple[int, int] = (1, 5)
    grab: bool = False  # grab when an announced sale starts
    grab_taps: int = 1  # taps while the answer is sold_out (a new request id each)
    grab_jitter_s: float = 0.3  # spread of reaction times after the start
    grab_now: bool = False  # grab right after joining (the sale is already live)
    claim: bool = False  # claim when a drop opens
    click_chance: float = 0.0  # chance of opening a product's card when it is pinned
    # Shares are exact per generator process (`Share`), not chance:
    checkout_ratio: float = 0.0  # share of reservations checked out
    pay_ratio: float = 1.0  # share of checked-out orders paid (the rest expire unpaid)
    think_s: tuple[float, float] = (0.5, 2.0)  # before checking out, before paying


PLANS: dict[str, Plan] = {
    "opening-rush": Plan(comment_every_s=(3.0, 8.0), like_every_s=(1.0, 3.0)),
    "comment-storm": Plan(
        comment_every_s=(0.5, 1.5), like_every_s=(0.2, 0.6), likes_per_tap=(1, 10)
    ),
    "flash-sale": Plan(
        grab=True, grab_taps=3, checkout_ratio=0.5, like_every_s=(5.0, 15.0), click_chance=0.5
    ),
    "coupon-rain": Plan(claim=True, like_every_s=(5.0, 15.0)),
    "checkout-wave": Plan(grab_now=True, checkout_ratio=1.0, think_s=(0.2, 1.0)),
    "full-show": Plan(
        comment_every_s=(5.0, 15.0),
        like_every_s=(2.0, 6.0),
        grab=True,
        click_chance=0.6,
        grab_taps=2,
        claim=True,
        checkout_ratio=0.6,
        pay_ratio=0.8,
    ),
}


class Dice:
    """One simulated viewer's random choices: think times, intervals, comment texts, likes
    per tap, whether it opens a pinned card, reaction jitter. With a run's `--seed`, viewer
    `index`'s choices come in the same order every run (`random.Random` seeded with the
    seed and the index; both generators draw through this class); without one, fresh."""

    __slots__ = ("rng",)

    def __init__(self, seed: int | None, index: int | str) -> None:
        self.rng = random.Random(None if seed is None else f"livecart:{seed}:{index}")

    def between(self, bounds: tuple[float, float]) -> float:
        return self.rng.uniform(*bounds)

    def upto(self, limit: float) -> float:
        return self.rng.uniform(0.0, limit)

    def chance(self, probability: float) -> bool:
        return self.rng.random() < probability

    def comment(self) -> str:
        return self.rng.choice(COMMENTS)

    def likes(self, plan: Plan) -> int:
        return self.rng.randint(*plan.likes_per_tap)


def rehearse(scenario: str, seed: int | None, viewers: int = 3, draws: int = 8) -> list[list[Any]]:
    """What the first `viewers` viewers of `scenario` would choose first (a comment's text
    and interval, a like's count and interval, a card opened or not and when, a reaction
    jitter, a think time), `draws` times each: a seeded run's choices, without a run."""
    plan = PLANS[scenario]
    plans = []
    for index in range(viewers):
        dice = Dice(seed, index)
        plans.append([
            (dice.comment(), dice.between(plan.comment_every_s or (0.0, 0.0)), dice.likes(plan),
             dice.between(plan.like_every_s or (0.0, 0.0)), dice.chance(plan.click_chance),
             dice.between((0.2, 2.0)), dice.upto(plan.grab_jitter_s), dice.between(plan.think_s))
            for _ in range(draws)
        ])  # fmt: skip
    return plans


@dataclass(slots=True)
class Share:
    """Takes `ratio` of the cases it is asked about, evenly and without chance: the k-th
    case (from 0) is taken when round((k + 1) * ratio) > round(k * ratio). So the first
    case is taken when ratio >= 0.5, and over n cases the takes are n * ratio rounded.
    Used per generator process for "check out half the reservations", so that a small
    run still has both kinds and runs repeat."""

    ratio: float
    asked: int = 0

    def take(self) -> bool:
        k, self.asked = self.asked, self.asked + 1
        return _half_up((k + 1) * self.ratio) > _half_up(k * self.ratio)


def _half_up(value: float) -> int:
    return int(value + 0.5 + 1e-9)


@dataclass(slots=True)
class CommentPacer:
    """What a phone's comment box does with the room's comment limits (the welcome's
    `limits`): it waits rather than send a comment the engine would refuse. The engine
    counts `rate_max` accepted comments per fixed window of `window_ms` that starts with
    the first of them, and `slow_ms` between two; times here are this client's clock,
    taken when the ack arrives, which is never earlier than the engine's own stamp, so
    waiting by them is never too short."""

    rate_max: int = 0  # 0: no rate limit
    window_ms: int = 0
    slow_ms: int = 0
    window_start_ms: float | None = None
    in_window: int = 0
    last_ms: float | None = None

    @classmethod
    def from_limits(cls, limits: dict[str, Any]) -> CommentPacer:
        return cls(
            int(limits.get("comment_rate_max") or 0),
            int(limits.get("comment_rate_window_ms") or 0),
            int(limits.get("slow_mode_ms") or 0),
        )

    def wait_ms(self, now_ms: float) -> float:
        """How long to wait before the next comment may be sent."""
        wait = 0.0
        if self.slow_ms and self.last_ms is not None:
            wait = self.last_ms + self.slow_ms - now_ms
        if self.rate_max and self.window_start_ms is not None and self.in_window >= self.rate_max:
            wait = max(wait, self.window_start_ms + self.window_ms - now_ms)
        return max(0.0, wait)

    def accepted(self, now_ms: float) -> None:
        """A comment was acknowledged at `now_ms`."""
        if self.window_start_ms is None or now_ms >= self.window_start_ms + self.window_ms:
            self.window_start_ms, self.in_window = now_ms, 0
        self.in_window += 1
        self.last_ms = now_ms


@dataclass(frozen=True, slots=True)
class Step:
    at_s: float  # seconds after the run starts
    action: str  # comment | pin | sale | drop
    params: dict[str, Any] = field(default_factory=dict)
    # Also wait for the audience to have joined (loadtests/show.py `play`): the first step
    # meant for everyone; later steps keep their spacing after it.
    after_join: bool = False


def ramp_s(users: int, spawn_rate: float) -> float:
    return users / max(spawn_rate, 0.1)


def timeline(scenario: str, users: int, spawn_rate: float, duration_s: float) -> list[Step]:
    """The host's actions. Sales and drops are sized so that demand exceeds supply (a
    real flash sale) and timed to start once everyone has joined, with a countdown."""
    ready = ramp_s(users, spawn_rate) + 2.0
    units = max(5, users // 5)
    hold_s = 20 if scenario == "flash-sale" else 60
    if scenario in {"opening-rush", "comment-storm"}:
        return [Step(0.0, "pin", {"product": 0}), Step(1.0, "comment", {"text": "Welcome!"})]
    if scenario == "flash-sale":
        return [
            Step(0.0, "pin", {"product": 0}),
            Step(
                ready,
                "sale",
                {
                    "product": 0,
                    "allotment": units,
                    "countdown_s": 5,
                    "hold_s": hold_s,
                    "duration_s": max(30, duration_s),
                },
                after_join=True,
            ),
        ]
    if scenario == "coupon-rain":
        return [
            Step(ready, "drop", {"quantity": max(5, users // 2), "countdown_s": 5}, after_join=True)
        ]
    if scenario == "checkout-wave":
        return [
            Step(
                0.0,
                "sale",
                {
                    "product": 0,
                    "allotment": users,
                    "countdown_s": 0,
                    "hold_s": 120,
                    "duration_s": max(60, duration_s),
                },
            )
        ]
    # full-show: pins, two flash sales, a coupon drop, comments, checkouts.
    span = max(duration_s - ready, 30.0)
    return [
        Step(0.0, "pin", {"product": 0}),
        Step(1.0, "comment", {"text": "Welcome to the show!"}),
        Step(ready, "drop", {"quantity": max(5, users // 3), "countdown_s": 3}, after_join=True),
        Step(
            ready + 0.1 * span,
            "sale",
            {"product": 0, "allotment": units, "countdown_s": 5, "hold_s": 60, "duration_s": span},
        ),
        Step(ready + 0.45 * span, "pin", {"product": 1}),
        Step(ready + 0.45 * span, "comment", {"text": "Next up: the hoodie"}),
        Step(
            ready + 0.5 * span,
            "sale",
            {
                "product": 1,
                "allotment": units,
                "countdown_s": 5,
                "hold_s": 60,
                "duration_s": 0.5 * span,
            },
        ),
    ]


PRODUCTS: list[dict[str, Any]] = [
    {
        "title": "Load-test sneaker",
        "currency": "USD",
        "skus": [{"sku": "LT-SNEAKER", "list_price": 8900}],
    },
    {
        "title": "Load-test hoodie",
        "currency": "USD",
        "skus": [{"sku": "LT-HOODIE", "list_price": 6500}],
    },
]
COUPON: dict[str, Any] = {
    "kind": "amount_off",
    "title": "10 off 50",
    "amount": 1000,
    "min_spend": 5000,
    "currency": "USD",
    "total": 1_000_000,
    "per_user_limit": 1,
}
