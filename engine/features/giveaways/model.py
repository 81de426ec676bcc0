"""A giveaway as opened, stored and shown: its terms (the body that opens it), its state,
entry rule, prize kind, and the record that the store reads and writes
(engine/features/giveaways/store.py)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Annotated, Any

import orjson
from msgspec import Meta, Struct

from engine.commerce.catalog import SKU_RE
from engine.commerce.coupons import check_template_id
from engine.core.clock import now_ms
from engine.core.fields import invalid_field
from engine.features.giveaways.draw import normalize, verify_commitment, verify_winners
from engine.store.redis_client import text

MAX_WINNERS = 1000
MAX_DURATION_S = 24 * 3600
DEFAULT_DURATION_S = 300
MAX_TITLE, MAX_PRIZE, MAX_KEYWORD = 120, 200, 40
MAX_WATCH_S = 24 * 3600
MAX_EXCLUDE_RECENT = 100


class PrizeKind(enum.Enum):
    LABEL = "label"
    PRODUCT = "product"
    COUPON = "coupon"


def prize_owner(giveaway_id: str) -> str:
    """Who owns a giveaway's private prize sale or drop."""
    return f"giveaway:{giveaway_id}"


class GiveawayState(enum.Enum):
    OPEN = "open"
    CLOSED = "closed"


class EntryRule(enum.Enum):
    ANY = "any"
    KEYWORD = "keyword"
    WATCH = "watch"


def _visible(value: str | None, name: str, max_len: int) -> str:
    """A required string with something visible, at most `max_len` characters, trimmed."""
    if value is None or not value.strip() or len(value) > max_len:
        raise invalid_field(name, f"a string of 1-{max_len} characters")
    return value.strip()


class GiveawayTerms(Struct, frozen=True):
    """The body that opens a giveaway (docs/api.md § Giveaways). A rule's own field
    (`keyword`, `min_watch_s`) and a prize kind's (`sku`, `template`) are checked only with
    that rule or kind; `prize` is required for a label, else it defaults to the product's
    or the template's title (the store reads it)."""

    title: str
    winners: Annotated[int, Meta(ge=1, le=MAX_WINNERS)]
    duration_s: Annotated[int, Meta(ge=1, le=MAX_DURATION_S)] = DEFAULT_DURATION_S
    rule: EntryRule = EntryRule.ANY
    keyword: str | None = None
    min_watch_s: int | None = None
    one_win_per_show: bool = False
    exclude_recent_winners: Annotated[int, Meta(ge=0, le=MAX_EXCLUDE_RECENT)] = 0
    prize_kind: PrizeKind = PrizeKind.LABEL
    prize: str | None = None
    sku: str | None = None
    template: str | None = None

    def __post_init__(self) -> None:
        _visible(self.title, "title", MAX_TITLE)
        if self.rule is EntryRule.KEYWORD and not normalize(
            _visible(self.keyword, "keyword", MAX_KEYWORD)
        ):
            raise invalid_field("keyword", "a keyword with some visible characters")
        if self.rule is EntryRule.WATCH and not 1 <= (self.min_watch_s or 0) <= MAX_WATCH_S:
            raise invalid_field("min_watch_s", f"an integer between 1 and {MAX_WATCH_S}")
        if self.prize_kind is PrizeKind.PRODUCT and not SKU_RE.fullmatch(self.sku or ""):
            raise invalid_field("sku", "a SKU of the room's catalog")
        if self.prize_kind is PrizeKind.COUPON:
            check_template_id(self.template)
        if self.prize is not None or self.prize_kind is PrizeKind.LABEL:
            _visible(self.prize, "prize", MAX_PRIZE)

    @property
    def entry_keyword(self) -> str:
        """The keyword to enter with, trimmed ("" unless the rule is `keyword`)."""
        return (self.keyword or "").strip() if self.rule is EntryRule.KEYWORD else ""

    @property
    def watch_s(self) -> int:
        """The seconds a viewer must have watched to enter (0 unless the rule is `watch`)."""
        return (self.min_watch_s or 0) if self.rule is EntryRule.WATCH else 0

    @property
    def prize_sku(self) -> str:
        return (self.sku or "") if self.prize_kind is PrizeKind.PRODUCT else ""

    @property
    def prize_template(self) -> str:
        return (self.template or "") if self.prize_kind is PrizeKind.COUPON else ""

    @property
    def prize_label(self) -> str | None:
        """The prize as the host gave it, trimmed; None: the product's or template's title."""
        return None if self.prize is None else self.prize.strip()


@dataclass(frozen=True, slots=True)
class Giveaway:
    id: str
    title: str
    prize: str
    winners_count: int
    rule: EntryRule
    keyword: str | None
    state: GiveawayState
    seed: str  # hex; secret until closed
    commitment: str
    created_at: int
    ends_at: int
    entrants_count: int
    min_watch_s: int = 0
    one_win_per_show: bool = False
    exclude_recent: int = 0
    prize_kind: PrizeKind = PrizeKind.LABEL
    sku: str | None = None
    template: str | None = None
    prize_sale: str | None = None  # product prizes: the private sale
    prize_drop: str | None = None  # coupon prizes: the private drop
    closed_at: int | None = None
    entrants: tuple[str, ...] = ()  # sorted, kept once closed
    excluded: tuple[str, ...] = ()  # sorted entrants the limits left out of the draw
    winners: tuple[str, ...] = ()
    names: dict[str, str] = field(default_factory=dict)  # winner -> display name
    awards: dict[str, dict[str, Any]] = field(default_factory=dict)  # winner -> prize given
    awarded: bool = False  # every winner's award is recorded

    @property
    def owner(self) -> str:
        """Who owns the prize sale or drop."""
        return prize_owner(self.id)

    def due(self, at_ms: int | None = None) -> bool:
        """Open but past its end: the next read or close draws it."""
        at = now_ms() if at_ms is None else at_ms
        return self.state is GiveawayState.OPEN and at >= self.ends_at

    def seed_matches(self) -> bool:
        """The revealed seed is the one committed to when the giveaway opened."""
        return verify_commitment(self.seed, self.commitment)

    def entrants_recorded(self) -> bool:
        """The stored entrants are a sorted list of `entrants_count` distinct users."""
        return (list(self.entrants) == sorted(set(self.entrants))
                and len(self.entrants) == self.entrants_count)  # fmt: skip

    def winners_drawn(self) -> bool:
        """The stored winners are the draw from the seed over the stored entrants."""
        return verify_winners(self.seed, list(self.entrants), self.winners_count,
                              list(self.winners), excluded=self.excluded)  # fmt: skip

    def to_wire(self) -> dict[str, Any]:
        closed = self.state is GiveawayState.CLOSED
        return {
            "id": self.id,
            "title": self.title,
            "prize": self.prize,
            "prize_kind": self.prize_kind.value,
            "sku": self.sku,
            "template": self.template,
            "winners_count": self.winners_count,
            "rule": self.rule.value,
            "keyword": self.keyword,  # public: `giveaway_opened` announces it
            "min_watch_s": self.min_watch_s or None,
            "one_win_per_show": self.one_win_per_show,
            "exclude_recent_winners": self.exclude_recent,
            "state": self.state.value,
            "commitment": self.commitment,
            "created_at": self.created_at,
            "ends_at": self.ends_at,
            "closed_at": self.closed_at,
            "entrants_count": self.entrants_count,
            # never before the draw: the seed would let anyone predict it
            "seed": self.seed if closed else None,
            "winners": list(self.winners) if closed else None,
            "winner_names": dict(self.names) if closed else None,
            "excluded_count": len(self.excluded) if closed else None,
            "awards": dict(self.awards) if closed else None,
        }

    @classmethod
    def from_hash(cls, raw: dict[Any, Any], entrants_count: int,
                  awards: dict[Any, Any] | None = None) -> Giveaway:  # fmt: skip
        h = {text(k): text(v) for k, v in raw.items()}
        closed = h["state"] == GiveawayState.CLOSED.value
        return cls(
            id=h["id"], title=h["title"], prize=h["prize"], winners_count=int(h["winners"]),
            rule=EntryRule(h["rule"]), keyword=h.get("keyword") or None,
            state=GiveawayState(h["state"]), seed=h["seed"], commitment=h["commitment"],
            created_at=int(h["created_at"]), ends_at=int(h["ends_at"]),
            entrants_count=int(h["entrants_count"]) if closed else entrants_count,
            min_watch_s=int(h.get("min_watch_s") or 0),
            one_win_per_show=h.get("one_win") == "1",
            exclude_recent=int(h.get("exclude_recent") or 0),
            prize_kind=PrizeKind(h.get("prize_kind") or PrizeKind.LABEL.value),
            sku=h.get("sku") or None, template=h.get("template") or None,
            prize_sale=h.get("prize_sale") or None, prize_drop=h.get("prize_drop") or None,
            closed_at=int(h["closed_at"]) if h.get("closed_at") else None,
            entrants=tuple(orjson.loads(h["entrants"])) if closed else (),
            excluded=tuple(orjson.loads(h.get("excluded") or "[]")) if closed else (),
            winners=tuple(orjson.loads(h["winners_list"])) if closed else (),
            names=orjson.loads(h.get("names") or "{}") if closed else {},
            awards={text(u): orjson.loads(a) for u, a in (awards or {}).items()},
            awarded=h.get("awarded") == "1",
        )  # fmt: skip
