"""Group buys (拼团): a SKU at a group price for teams of K who all pay within T.

    forming ──K-th member joins──▶ full
       │                            │
       └─────────┬──────────────────┘
                 ├── K members' orders paid before the deadline ──▶ completed
                 └── the deadline passes first ──────────────────▶ failed ─▶ unwound

A deal's units live in a private sale (owner `groupbuy:<deal>`), so stock, checkout,
expiry and the audit treat them like any other. Starting a team or joining one is one
script (lua/team_join.lua): the checks, the membership and the member's unit, reserved at
the group price until the team's deadline, happen together, so concurrent joins from any
number of processes never make more than K members. A member checks the unit out with the
normal checkout; the order's payment window is capped at the team's deadline (the
reservation carries it as `d`, see checkout.lua).

The decisive rule, race-free: a team completes iff K members' orders have `paid_at` (set
by order_pay.lua on Redis time) before its deadline. lua/team_settle.lua applies it exactly
once, on Redis time too; a payment hook (`on_paid`) and every process's sweeper (`sweep`)
call it, and either may repeat it. A completed team's orders simply stay paid. A failed
team is then unwound member by member, each step idempotent and re-run by the next sweep
while the team is still in the due set: a pending order is cancelled (reason
`team_failed`: a payment arriving later is refunded automatically by order_pay.lua), a
held unit is released, and a paid order is refunded in full through the provider with its
lines restocked. One case ends elsewhere: an order the order sweeper expired at the
deadline can still be paid late if the deal has a unit to re-take; that payment's hook
unwinds it (refunded) as soon as it lands.
"""

from __future__ import annotations

import builtins
import enum
import logging
import re
from dataclasses import asdict, dataclass
from typing import Annotated, Any

import orjson
from msgspec import Meta, Struct
from redis.asyncio import Redis

from engine.commerce.orders import OrderState, OrderStore
from engine.commerce.payments import Payments, RefundTerms
from engine.commerce.sales import MAX_PER_USER, MAX_UNITS, SaleStore
from engine.commerce.stock import Stock
from engine.core.clock import now_ms
from engine.core.errors import ConflictError, LivecartError, NotFoundError
from engine.core.fields import invalid_field
from engine.core.identity import Author
from engine.store import keys
from engine.store.redis_client import due_by_room, text, texts
from engine.store.roomlog import append_entry, notify_user
from engine.store.scripts import Scripts

log = logging.getLogger("livecart.groupbuys")

NAME = "group_buys"  # the feature's name: its field in welcomes

DEAL_ID_RE = re.compile(r"gb[0-9]{1,9}")
TEAM_ID_RE = re.compile(r"t[0-9]{1,9}")
MIN_TEAM, MAX_TEAM = 2, 50
MIN_WINDOW_S, MAX_WINDOW_S, DEFAULT_WINDOW_S = 5, 24 * 3600, 600
OWNER_PREFIX = "groupbuy:"
_REFUNDABLE = frozenset({OrderState.PAID, OrderState.FULFILLED, OrderState.PARTIALLY_REFUNDED})


class TeamState(enum.Enum):
    FORMING = "forming"  # fewer than K members
    FULL = "full"  # K members, waiting for their payments
    COMPLETED = "completed"  # K members paid before the deadline
    FAILED = "failed"  # the deadline passed first

    @property
    def open(self) -> bool:
        return self in (TeamState.FORMING, TeamState.FULL)


def check_deal_id(value: Any) -> str:
    if not isinstance(value, str) or not DEAL_ID_RE.fullmatch(value):
        raise invalid_field("group_buy", "a group-buy id such as 'gb2'")
    return value


def check_team_id(value: Any) -> str:
    if not isinstance(value, str) or not TEAM_ID_RE.fullmatch(value):
        raise invalid_field("team", "a team id such as 't3'")
    return value


class DealTerms(Struct, frozen=True, forbid_unknown_fields=False):
    """The body that opens a deal (docs/api.md § Group buys). The group price's ceiling,
    the SKU's list price, is checked against the catalog when the deal is created."""

    sku: str
    group_price: Annotated[int, Meta(ge=0)]
    team_size: Annotated[int, Meta(ge=MIN_TEAM, le=MAX_TEAM)]
    units: Annotated[int, Meta(ge=1, le=MAX_UNITS)]
    window_s: Annotated[int, Meta(ge=MIN_WINDOW_S, le=MAX_WINDOW_S)] = DEFAULT_WINDOW_S
    per_user_limit: Annotated[int, Meta(ge=1, le=MAX_PER_USER)] = 1


@dataclass(frozen=True, slots=True)
class Deal:
    id: str
    sku: str
    product: str
    title: str
    currency: str
    list_price: int
    price: int
    size: int
    window_ms: int
    units: int
    per_user_limit: int
    sale: str
    created_at: int

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.id, "sku": self.sku, "product": self.product, "title": self.title,
            "currency": self.currency, "list_price": self.list_price, "group_price": self.price,
            "team_size": self.size, "window_s": self.window_ms // 1000, "units": self.units,
            "per_user_limit": self.per_user_limit, "sale": self.sale,
            "created_at": self.created_at,
        }  # fmt: skip

    @classmethod
    def from_hash(cls, raw: dict[Any, Any]) -> Deal:
        h = {text(k): text(v) for k, v in raw.items()}
        return cls(
            id=h["id"], sku=h["sku"], product=h["product"], title=h["title"],
            currency=h["currency"], list_price=int(h["list_price"]), price=int(h["price"]),
            size=int(h["size"]), window_ms=int(h["window_ms"]), units=int(h["units"]),
            per_user_limit=int(h["per_user_limit"]), sale=h["sale"],
            created_at=int(h["created_at"]),
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Member:
    user: str
    name: str
    reservation: str
    joined_at: int


@dataclass(frozen=True, slots=True)
class Team:
    id: str
    deal: str
    state: TeamState
    leader: str
    leader_name: str
    size: int
    created_at: int
    deadline: int
    members: tuple[Member, ...]
    settled_at: int | None = None
    paid: int | None = None
    unwound_at: int | None = None

    @property
    def ref(self) -> str:
        return f"{self.deal}.{self.id}"

    def due(self, at_ms: int | None = None) -> bool:
        return self.state.open and (now_ms() if at_ms is None else at_ms) >= self.deadline

    def to_wire(self, room: str) -> dict[str, Any]:
        return {
            "id": self.id, "groupbuy": self.deal, "ref": self.ref, "state": self.state.value,
            "leader": self.leader, "leader_name": self.leader_name, "size": self.size,
            "members": len(self.members), "needed": self.size - len(self.members),
            "roster": [{"user": m.user, "name": m.name, "joined_at": m.joined_at}
                       for m in self.members],
            "created_at": self.created_at, "deadline": self.deadline,
            "settled_at": self.settled_at, "paid": self.paid, "unwound_at": self.unwound_at,
            "share_path": f"/live/{room}?team={self.ref}", "server_time": now_ms(),
        }  # fmt: skip

    @classmethod
    def from_hash(cls, raw: dict[Any, Any]) -> Team:
        h = {text(k): text(v) for k, v in raw.items()}
        members = []
        for n in range(1, int(h["members"]) + 1):
            m = orjson.loads(h[f"member:{n}"])
            members.append(Member(m["u"], m["name"], m["r"], int(m["at"])))
        optional = {name: int(h[name]) if h.get(name) else None
                    for name in ("settled_at", "paid", "unwound_at")}  # fmt: skip
        return cls(
            id=h["id"], deal=h["deal"], state=TeamState(h["state"]), leader=h["leader"],
            leader_name=h["leader_name"], size=int(h["size"]), created_at=int(h["created_at"]),
            deadline=int(h["deadline"]), members=tuple(members), **optional,
        )  # fmt: skip


async def load_deal(redis: Redis, room: str, deal_id: str) -> Deal | None:
    raw = await redis.hgetall(keys.groupbuy(room, deal_id))
    return Deal.from_hash(raw) if raw else None


async def load_teams(redis: Redis, room: str, deal_id: str) -> builtins.list[Team]:
    ids = texts(await redis.zrange(keys.groupbuy_teams(room, deal_id), 0, -1))
    async with redis.pipeline(transaction=True) as pipe:
        for team_id in ids:
            pipe.hgetall(keys.groupbuy_team(room, deal_id, team_id))
        raws = await pipe.execute()
    return [Team.from_hash(raw) for raw in raws if raw]


_JOIN_ERRORS: dict[str, str] = {
    "groupbuy_not_found": "no such group buy in this room",
    "team_not_found": "no such team in this group buy",
    "team_exists": "that team exists already",
    "team_full": "the team has all its members",
    "team_closed": "the team is no longer taking members",
    "already_in_team": "you are in this team already",
    "groupbuy_limit": "you have reached this group buy's per-user limit",
    "groupbuy_sold_out": "this group buy has no units left",
}


class GroupBuys:
    def __init__(self, redis: Redis, scripts: Scripts, sales: SaleStore, stock: Stock,
                 orders: OrderStore, *, payments: Payments, log_maxlen: int) -> None:  # fmt: skip
        self.redis = redis
        # Looked up at each call: the node rebuilds its scripts for the bus's pub/sub flavour
        # when it starts (engine/store/scripts.py `use`).
        self.scripts = scripts
        self.sales = sales
        self.stock = stock
        self.orders = orders
        self.payments = payments
        self.log_maxlen = log_maxlen

    # ---- deals ----------------------------------------------------------------------------

    async def create(self, room: str, terms: DealTerms, *, at_ms: int | None = None) -> Deal:
        sku, units, window_s = terms.sku, terms.units, terms.window_s
        _, variant = await self.sales.catalog.find_sku(room, sku)
        if terms.group_price > variant.list_price:
            raise invalid_field("group_price", f"an integer between 0 and {variant.list_price}")
        deal_id = f"gb{await self.redis.incr(keys.groupbuy_counter(room))}"
        sale = await self.sales.create_private(room, sku, units, owner=OWNER_PREFIX + deal_id,
                                               hold_ms=window_s * 1000)  # fmt: skip
        deal = Deal(deal_id, sku, sale.product, sale.title, sale.currency, variant.list_price,
                    terms.group_price, terms.team_size, window_s * 1000, units,
                    terms.per_user_limit, sale.id,
                    now_ms() if at_ms is None else at_ms)  # fmt: skip
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(keys.groupbuy(room, deal_id),
                      items=[x for pair in asdict(deal).items() for x in pair])  # fmt: skip
            pipe.zadd(keys.groupbuys(room), {deal_id: int(deal_id[2:])})
            await pipe.execute()
        # So pages already open learn of the deal (teams then change it by their entries).
        await append_entry(self.redis, self.scripts, room, "groupbuy_opened", deal_id,
                           data={**deal.to_wire(), "available": units, "teams": []},
                           maxlen=self.log_maxlen)  # fmt: skip
        return deal

    async def deal_wire(self, room: str, deal: Deal) -> dict[str, Any]:
        """The deal as the API and welcomes show it: terms, units left, its teams."""
        teams = await self.teams(room, deal.id)
        sale = await self.sales.get(room, deal.sale)
        return {**deal.to_wire(), "available": sale.available,
                "teams": [t.to_wire(room) for t in teams]}  # fmt: skip

    async def get(self, room: str, deal_id: str) -> Deal:
        deal = await load_deal(self.redis, room, check_deal_id(deal_id))
        if deal is None:
            raise NotFoundError(f"no group buy {deal_id!r} in this room",
                                code="groupbuy_not_found")  # fmt: skip
        return deal

    async def list(self, room: str) -> builtins.list[Deal]:
        ids = texts(await self.redis.zrange(keys.groupbuys(room), 0, -1))
        return [await self.get(room, deal_id) for deal_id in ids]

    async def teams(self, room: str, deal_id: str) -> builtins.list[Team]:
        """The deal's teams; one past its deadline is settled first."""
        teams = await load_teams(self.redis, room, check_deal_id(deal_id))
        return [await self.settle(room, deal_id, t.id) if t.due() else t for t in teams]

    async def team(self, room: str, deal_id: str, team_id: str) -> Team:
        team = await self._read_team(room, check_deal_id(deal_id), check_team_id(team_id))
        return await self.settle(room, deal_id, team_id) if team.due() else team

    async def _read_team(self, room: str, deal_id: str, team_id: str) -> Team:
        raw = await self.redis.hgetall(keys.groupbuy_team(room, deal_id, team_id))
        if not raw:
            await self.get(room, deal_id)
            raise NotFoundError(f"no team {team_id!r} in group buy {deal_id}",
                                code="team_not_found")  # fmt: skip
        return Team.from_hash(raw)

    # ---- starting and joining ---------------------------------------------------------------

    async def start(self, room: str, deal_id: str, author: Author,
                    *, at_ms: int | None = None) -> tuple[Team, str]:  # fmt: skip
        """A new team led by `author`; (the team, the leader's reservation)."""
        deal = await self.get(room, deal_id)
        team_id = f"t{await self.redis.hincrby(keys.groupbuy(room, deal.id), 'teams', 1)}"
        return await self._join(room, deal, team_id, author, mode="start", at_ms=at_ms)

    async def join(self, room: str, deal_id: str, team_id: str, author: Author,
                   *, at_ms: int | None = None) -> tuple[Team, str]:  # fmt: skip
        """`author` joins an open team; (the team, their reservation)."""
        deal = await self.get(room, deal_id)
        return await self._join(
            room, deal, check_team_id(team_id), author, mode="join", at_ms=at_ms
        )

    async def _join(self, room: str, deal: Deal, team_id: str, author: Author, *, mode: str,
                    at_ms: int | None) -> tuple[Team, str]:  # fmt: skip
        result = await self.scripts.all["team_join"](
            self.redis,
            [keys.groupbuy(room, deal.id), keys.groupbuy_team(room, deal.id, team_id),
             keys.groupbuy_teams(room, deal.id), keys.groupbuy_due(room),
             keys.sale(room, deal.sale), keys.sale_reservations(room, deal.sale),
             keys.sale_users(room, deal.sale), keys.expiry(room), keys.outbox(room),
             keys.room_stream(room)],
            ["" if at_ms is None else at_ms, self.log_maxlen, self.sales.outbox_maxlen,
             keys.room_bus(room), mode, team_id, author.user, author.name],
        )  # fmt: skip
        if text(result[0]) == "err":
            code = text(result[1])
            cls = NotFoundError if code.endswith("_not_found") else ConflictError
            raise cls(_JOIN_ERRORS[code], code=code)
        return await self._read_team(room, deal.id, team_id), text(result[4])

    # ---- settling -------------------------------------------------------------------------

    async def _records(
        self, room: str, sale_id: str, rids: builtins.list[str]
    ) -> builtins.list[dict[str, Any] | None]:
        if not rids:
            return []
        raws = await self.redis.hmget(keys.sale_reservations(room, sale_id), rids)
        return [None if raw is None else orjson.loads(raw) for raw in raws]

    async def settle(self, room: str, deal_id: str, team_id: str,
                     *, at_ms: int | None = None) -> Team:  # fmt: skip
        """Decide the team if it is due (team_settle.lua), then unwind it if it failed.
        Safe to race and to repeat."""
        deal = await self.get(room, deal_id)
        flipped = False
        for _ in range(5):  # "stale": a member checked out or paid while we read
            team = await self._read_team(room, deal.id, team_id)
            if not team.state.open:
                break
            rids = [m.reservation for m in team.members]
            records = await self._records(room, deal.sale, rids)
            order_keys: builtins.list[str] = []
            pairs: builtins.list[str | int] = []
            for rid, record in zip(rids, records, strict=True):
                order_id = (record or {}).get("o", "")
                if order_id:
                    order_keys.append(keys.order(room, order_id))
                pairs += [rid, order_id, 4 + len(order_keys) if order_id else 0]
            result = await self.scripts.all["team_settle"](
                self.redis,
                [keys.groupbuy_team(room, deal.id, team_id), keys.groupbuy_due(room),
                 keys.room_stream(room), keys.sale_reservations(room, deal.sale), *order_keys],
                ["" if at_ms is None else at_ms, self.log_maxlen, keys.room_bus(room), deal.id,
                 *pairs],
            )  # fmt: skip
            outcome = text(result[0])
            if outcome != "stale":
                flipped = outcome == "flipped"
                break
        team = await self._read_team(room, deal.id, team_id)
        if team.state is TeamState.COMPLETED and flipped:
            for member in team.members:
                await notify_user(self.redis, self.scripts, room, member.user, "team_completed",
                                  groupbuy=deal.id, team=team.id, price=deal.price,
                                  currency=deal.currency, title=deal.title)  # fmt: skip
        elif team.state is TeamState.FAILED:
            await self._unwind(room, deal, team, flipped, at_ms)
            team = await self._read_team(room, deal.id, team_id)
        return team

    async def _unwind(self, room: str, deal: Deal, team: Team, flipped: bool,
                      at_ms: int | None) -> None:  # fmt: skip
        """Give every member of a failed team their money or their unit back."""
        done = True
        for member in team.members:
            try:
                outcome, refunded, order_id = await self._unwind_member(room, deal, team,
                                                                        member, at_ms)  # fmt: skip
            except LivecartError as exc:  # e.g. the provider refused: the next sweep retries
                log.warning("team %s in %s: member %s not unwound: %s", team.ref, room,
                            member.user, exc)  # fmt: skip
                done = False
                continue
            if outcome != "none" or flipped:
                await notify_user(self.redis, self.scripts, room, member.user, "team_failed",
                                  groupbuy=deal.id, team=team.id, order=order_id, refunded=refunded,
                                  currency=deal.currency, title=deal.title)  # fmt: skip
        if done and team.unwound_at is None:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hset(keys.groupbuy_team(room, deal.id, team.id), "unwound_at", now_ms())
                pipe.zrem(keys.groupbuy_due(room), team.ref)
                await pipe.execute()

    async def _unwind_member(self, room: str, deal: Deal, team: Team, member: Member,
                             at_ms: int | None) -> tuple[str, int, str | None]:  # fmt: skip
        """(what was done: cancelled | released | refunded | none, amount refunded, order)."""
        for _ in range(3):  # the member may check out or pay between our read and our step
            [record] = await self._records(room, deal.sale, [member.reservation])
            if record is None:
                return "none", 0, None
            order_id: str | None = record.get("o")
            if record["s"] == "held" and order_id:
                try:
                    await self.orders.cancel(room, order_id, "groupbuy", reason="team_failed",
                                             at_ms=at_ms)  # fmt: skip
                    return "cancelled", 0, order_id
                except ConflictError:
                    continue
            if record["s"] == "held":
                [outcome] = await self.stock.release_many(room, deal.sale, [member.reservation],
                                                          member.user, at_ms=at_ms)  # fmt: skip
                if outcome == "released":
                    return "released", 0, None
                continue
            if record["s"] in ("sold", "returned") and order_id:  # returned: maybe by us
                return await self._refund(room, team, order_id)
            return "none", 0, order_id
        raise ConflictError(f"member {member.user} of team {team.ref} kept changing; retry",
                            code="reservation_changed")  # fmt: skip

    async def _refund(self, room: str, team: Team, order_id: str) -> tuple[str, int, str]:
        order = await self.orders.get(room, order_id)
        refund_id = f"team-{team.deal}-{team.id}"
        ours = f"refund:{refund_id}" in order.fields
        if order.state not in _REFUNDABLE and not ours:
            return "none", 0, order_id  # refunded in full already (by the host)
        restock = []
        for line in order.lines:
            [record] = await self._records(room, line["sale"], [line["reservation"]])
            if record and record["s"] == "sold" and record.get("o") == order_id:
                restock.append(line["reservation"])
        # The same refund id every time: a retry replays it (and pays it out at the
        # provider, which refunds once per id) instead of refunding twice.
        updated, replayed = await self.payments.refund(
            room, order_id, RefundTerms(id=refund_id, reason="team_failed", restock=restock),
            "groupbuy",
        )  # fmt: skip
        amount = next(r["amount"] for r in updated.refunds() if r["id"] == refund_id)
        return ("none" if replayed else "refunded"), amount, order_id

    # ---- hooks ------------------------------------------------------------------------------

    async def on_paid(self, room: str, order_id: str) -> None:
        """An order was paid: if it is a team member's, the team may be complete (or, if it
        failed already, this late payment is refunded)."""
        order = await self.orders.get(room, order_id)
        for line in order.lines:
            owner = text(await self.redis.hget(keys.sale(room, line["sale"]), "private"))
            if not owner.startswith(OWNER_PREFIX):
                continue
            deal_id = owner.removeprefix(OWNER_PREFIX)
            team_id = await self.redis.hget(keys.groupbuy(room, deal_id),
                                            f"r:{line['reservation']}")  # fmt: skip
            if team_id is None:
                continue
            try:
                await self.settle(room, deal_id, text(team_id))
            except LivecartError as exc:  # the payment stands; the sweep settles at the deadline
                log.warning("team %s.%s in %s not settled after order %s was paid: %s",
                            deal_id, text(team_id), room, order_id, exc)  # fmt: skip

    async def sweep(self, rooms: builtins.list[str], now: int, *, at_ms: int | None = None) -> int:
        """Settle the teams due by `now` (the sweeper's clock picks them; the decision is
        team_settle.lua's, on Redis time unless `at_ms` pins it); returns how many."""
        settled = 0
        for room, due in await due_by_room(self.redis, keys.groupbuy_due, rooms, now):
            for ref in due:
                deal_id, _, team_id = ref.partition(".")
                try:
                    team = await self.settle(room, deal_id, team_id, at_ms=at_ms)
                except LivecartError as exc:
                    log.warning("team %s in %s not settled: %s", ref, room, exc)
                    continue
                settled += not team.state.open
        return settled
