"""Every Redis key and channel the engine uses, built in one place.

All keys of a room carry the `{room}` hash tag so a room lives in one Cluster slot and
multi-key Lua scripts run unchanged on Redis Cluster. The only keys without a room tag
are the global room index (`lc:rooms`), a host's audience set (`lc:host:{host}:audience`)
and the simulated payment provider's records
(`lc:psp:*`, the provider is another system), which no script touches with room keys.
"""

from __future__ import annotations

import re

from engine.core.errors import ProtocolError

PREFIX = "lc"
ROOM_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
# Users appear inside keys; keep them to a safe alphabet.
USER_ID_RE = re.compile(r"^[A-Za-z0-9_.:@-]{1,64}$")


def check_room_id(room: str) -> str:
    if not ROOM_ID_RE.fullmatch(room):
        raise ProtocolError(
            "room ids are 1-40 characters of a-z, 0-9, '_' and '-', "
            "starting with a letter or digit",
            code="invalid_field",
            details={"field": "room"},
        )
    return room


def check_user_id(user: str) -> str:
    if not USER_ID_RE.fullmatch(user):
        raise ProtocolError(
            "user ids are 1-64 characters of A-Z, a-z, 0-9 and _ . : @ -",
            code="invalid_field",
            details={"field": "user"},
        )
    return user


def rooms_index() -> str:
    return f"{PREFIX}:rooms"


def _room(room: str) -> str:
    return f"{PREFIX}:{{{room}}}"


def feature(room: str, name: str, *parts: str) -> str:
    """A key of a feature's own (engine/core/feature.py): `lc:{room}:f:<name>:<parts>`. The
    feature documents its layout; the room's hash tag keeps its scripts on one slot."""
    return ":".join((_room(room), "f", name, *parts))


def room_meta(room: str) -> str:
    """Hash: the room's fields and settings (see engine.rooms.rooms)."""
    return f"{_room(room)}:meta"


def room_stream(room: str) -> str:
    """Stream: the room's ordered log (comments, deletions, pins, state changes)."""
    return f"{_room(room)}:log"


def room_bus(room: str) -> str:
    """Pub/sub channel: every stream entry and control message of the room."""
    return f"{_room(room)}:bus"


def likes(room: str) -> str:
    return f"{_room(room)}:likes"


def presence(room: str) -> str:
    """Hash: engine process id -> "online_count|reported_at_ms"."""
    return f"{_room(room)}:presence"


def peak(room: str) -> str:
    return f"{_room(room)}:peak"


def uniques(room: str) -> str:
    """Hash: viewer identity -> when it first joined the room (ms); HLEN = unique viewers."""
    return f"{_room(room)}:viewers"


def anonymous_by_address(room: str) -> str:
    """Hash: client address -> anonymous identities it had counted as unique viewers (the
    bound that keeps invented device ids from inflating them; engine/rooms/lua/viewer_seen.lua)."""
    return f"{_room(room)}:viewers:anon"


def audience(host: str) -> str:
    """Set: identities that have watched any show of this host (new vs returning viewers).
    Not a room key: no script touches it together with a room's keys."""
    return f"{PREFIX}:host:{{{host}}}:audience"


def show_metrics(room: str) -> str:
    """Hash: the room's per-minute and total counters (engine.store.meter)."""
    return f"{_room(room)}:metrics"


def paid_buyers(room: str) -> str:
    """Set: users with a paid order in the room (the live conversion's numerator)."""
    return f"{_room(room)}:paid_buyers"


def show_markers(room: str) -> str:
    """List: the show's timeline markers, JSON {t, kind, label} (engine.store.meter)."""
    return f"{_room(room)}:markers"


def banned_users(room: str) -> str:
    return f"{_room(room)}:banned"


def ban_ranks(room: str) -> str:
    """Hash: banned user -> the rank of the role that banned them
    (engine.realtime.protocol.Role)."""
    return f"{_room(room)}:banned:by"


def revocations(room: str) -> str:
    """Hash: user -> Unix second; their tokens for the room issued up to it are revoked."""
    return f"{_room(room)}:revocations"


def banned_words(room: str) -> str:
    return f"{_room(room)}:banned_words"


def muted(room: str, user: str) -> str:
    return f"{_room(room)}:mute:{user}"


def slow_mode(room: str, user: str) -> str:
    return f"{_room(room)}:slow:{user}"


def comment_rate(room: str, user: str) -> str:
    return f"{_room(room)}:rate:{user}"


# ---- catalog -------------------------------------------------------------------------


def product_counter(room: str) -> str:
    return f"{_room(room)}:product_seq"


def products(room: str) -> str:
    """Hash: product id -> product JSON (with its SKUs)."""
    return f"{_room(room)}:products"


def skus(room: str) -> str:
    """Hash: SKU -> product id (SKUs are unique within a room)."""
    return f"{_room(room)}:skus"


def lineup(room: str) -> str:
    """List: product ids in run-of-show order."""
    return f"{_room(room)}:lineup"


def impressions(room: str) -> str:
    """Hash: product id -> product card impressions."""
    return f"{_room(room)}:impressions"


# ---- flash sales -----------------------------------------------------------------------


def sale_counter(room: str) -> str:
    return f"{_room(room)}:sale_seq"


def sales(room: str) -> str:
    """Sorted set: sale id -> its number (creation order)."""
    return f"{_room(room)}:sales"


def sale(room: str, sale_id: str) -> str:
    """Hash: the sale's terms and its stock counters."""
    return f"{_room(room)}:sale:{sale_id}"


def sale_reservations(room: str, sale_id: str) -> str:
    """Hash: reservation id -> JSON record (u user, q units, s state, e expires_at ...)."""
    return f"{_room(room)}:sale:{sale_id}:res"


def sale_users(room: str, sale_id: str) -> str:
    """Hash: user -> units held or sold (the per-user cap counts these)."""
    return f"{_room(room)}:sale:{sale_id}:users"


def sale_answers(room: str, sale_id: str) -> str:
    """Hash: "user request-id" -> the grab's answer (idempotency)."""
    return f"{_room(room)}:sale:{sale_id}:answers"


def sale_waitlist(room: str, sale_id: str) -> str:
    return f"{_room(room)}:sale:{sale_id}:waitlist"


def sale_waiting(room: str, sale_id: str) -> str:
    """Set: users on the waitlist (for uniqueness)."""
    return f"{_room(room)}:sale:{sale_id}:waiting"


def expiry(room: str) -> str:
    """Sorted set: held reservation id -> expires_at ms (the sweeper's index)."""
    return f"{_room(room)}:expiry"


def outbox(room: str) -> str:
    """Stream: every stock event (reserved, released, expired, sold, sale changes)."""
    return f"{_room(room)}:outbox"


# ---- coupons ----------------------------------------------------------------------------


def coupon_counter(room: str) -> str:
    """Counter shared by template ("t3") and drop ("d7") numbers."""
    return f"{_room(room)}:coupon_seq"


def coupon_templates(room: str) -> str:
    """Hash: template id -> template JSON (terms are immutable once created)."""
    return f"{_room(room)}:coupon_templates"


def coupon_issued(room: str) -> str:
    """Hash: template id -> coupons put into drops so far (never above the template total)."""
    return f"{_room(room)}:coupon_issued"


def coupon_drops(room: str) -> str:
    """Sorted set: drop id -> its number (creation order)."""
    return f"{_room(room)}:drops"


def coupon_drop(room: str, drop_id: str) -> str:
    """Hash: the drop's terms and counters (quantity, remaining, claimed)."""
    return f"{_room(room)}:drop:{drop_id}"


def coupon_drop_answers(room: str, drop_id: str) -> str:
    """Hash: "user request-id" -> the claim's answer (idempotency)."""
    return f"{_room(room)}:drop:{drop_id}:answers"


def coupons(room: str) -> str:
    """Hash: coupon id -> JSON record (u user, t template, d drop, s state, o order)."""
    return f"{_room(room)}:coupons"


def coupon_holders(room: str) -> str:
    """Hash: "template user" -> coupons of that template the user claimed (per-user cap)."""
    return f"{_room(room)}:coupon_holders"


def coupon_wallets(room: str) -> str:
    """Hash: user -> space-separated ids of the coupons they claimed."""
    return f"{_room(room)}:wallets"


def customer_tiers(room: str) -> str:
    """Hash: buyer -> their tier in the room's shop (engine/ledger/customers.py), written
    when a tiered drop is made; a user it does not name is a prospect (coupon_claim.lua)."""
    return f"{_room(room)}:customer_tiers"


# ---- orders and payments ----------------------------------------------------------------


def order_counter(room: str) -> str:
    return f"{_room(room)}:order_seq"


def orders(room: str) -> str:
    """Sorted set: order id -> its number (creation order)."""
    return f"{_room(room)}:orders"


def order(room: str, order_id: str) -> str:
    """Hash: the order's state fields and its immutable detail JSON (lines, pricing, address)."""
    return f"{_room(room)}:order:{order_id}"


def order_keys(room: str) -> str:
    """Hash: "user idempotency-key" -> order id."""
    return f"{_room(room)}:order_keys"


def order_expiry(room: str) -> str:
    """Sorted set: pending order id -> payment deadline ms (the sweeper's index)."""
    return f"{_room(room)}:order_expiry"


def order_counts(room: str) -> str:
    """Hash: "u:<user>" / "d:<device>" -> orders counted against the risk limits."""
    return f"{_room(room)}:order_counts"


def user_orders(room: str) -> str:
    """Hash: user -> space-separated ids of their orders."""
    return f"{_room(room)}:user_orders"


def blocklist(room: str) -> str:
    """Set: "u:<user>" / "d:<device>" that may not order in this room."""
    return f"{_room(room)}:blocklist"


def payments(room: str) -> str:
    """Hash: provider payment id -> payment JSON (order, amount, state, events)."""
    return f"{_room(room)}:payments"


def callback_nonce(room: str, nonce: str) -> str:
    """String with a TTL: a payment callback nonce already seen (replay guard)."""
    return f"{_room(room)}:nonce:{nonce}"


def order_events(room: str) -> str:
    """Stream: every order and payment state change, for downstream systems (consumer groups)."""
    return f"{_room(room)}:order_events"


# ---- the simulated payment provider (another system; not room data) ---------------------


def psp_payment(payment_id: str) -> str:
    """Hash: one payment at the simulated provider (amount, state, callback URL, refunds)."""
    return f"{PREFIX}:psp:payment:{payment_id}"


def psp_settlement(day: str) -> str:
    """List: the simulated provider's settlement lines of one UTC day (`YYYY-MM-DD`), as JSON,
    in the order they happened (a charge per payment that succeeded, a refund per refund)."""
    return f"{PREFIX}:psp:settlement:{day}"


def room_keys_pattern(room: str) -> str:
    """SCAN pattern matching every key of one room (used to delete a room in tests/tools)."""
    return f"{_room(room)}:*"


# ---- giveaways ----------------------------------------------------------------------------


def auction_counter(room: str) -> str:
    return f"{_room(room)}:auction_seq"


def auctions(room: str) -> str:
    """Sorted set: auction id -> its number (creation order)."""
    return f"{_room(room)}:auctions"


def auctions_open(room: str) -> str:
    """Sorted set: open auction id -> its end (ms), moved by anti-sniping extensions; the
    sweeper closes the due ones."""
    return f"{_room(room)}:auctions_open"


def auction(room: str, auction_id: str) -> str:
    """Hash: the auction's terms, its state, the current price, leader and the leader's
    proxy maximum, and once closed its winner and offers (`offer:<n>`)."""
    return f"{_room(room)}:auction:{auction_id}"


def auction_bids(room: str, auction_id: str) -> str:
    """List: every bid in the order Redis applied them (JSON), for replay and the audit."""
    return f"{_room(room)}:auction:{auction_id}:bids"


def giveaway_counter(room: str) -> str:
    return f"{_room(room)}:giveaway_seq"


def giveaways(room: str) -> str:
    """Sorted set: giveaway id -> its number (creation order)."""
    return f"{_room(room)}:giveaways"


def giveaway(room: str, giveaway_id: str) -> str:
    """Hash: the giveaway's terms, state, secret seed and commitment, and after the draw
    its sorted entrants and winners (JSON arrays)."""
    return f"{_room(room)}:giveaway:{giveaway_id}"


def giveaway_entrants(room: str, giveaway_id: str) -> str:
    """Hash: user who entered the giveaway -> their display name (one entry per user)."""
    return f"{_room(room)}:giveaway:{giveaway_id}:entrants"


def giveaway_keywords(room: str) -> str:
    """Hash: open keyword giveaway id -> its normalized keyword (what a comment is matched
    against: one small read per comment instead of scanning the giveaways)."""
    return f"{_room(room)}:giveaway_keywords"


def giveaway_awards(room: str, giveaway_id: str) -> str:
    """Hash: winner -> what they were given, JSON ({} for a label, {"reservation", ...} for
    a product unit, {"coupon"} for a coupon, {"status"} when it could not be given)."""
    return f"{_room(room)}:giveaway:{giveaway_id}:awards"


def giveaways_closed(room: str) -> str:
    """List: giveaway ids in the order they closed (what "the last N giveaways" means)."""
    return f"{_room(room)}:giveaways_closed"


def giveaway_room_winners(room: str) -> str:
    """Hash: user -> space-separated ids of the giveaways they won in this room."""
    return f"{_room(room)}:giveaway_winners"


# ---- watch time ---------------------------------------------------------------------------


def watch_ms(room: str) -> str:
    """Hash: user -> ms watched in this room over finished sessions."""
    return f"{_room(room)}:watch_ms"


def watch_since(room: str) -> str:
    """Hash: user -> start (ms) of their current watching session, while one is open."""
    return f"{_room(room)}:watch_since"


# ---- comment-to-buy -------------------------------------------------------------------------


def comment_buy(room: str) -> str:
    """String: the room's comment-to-buy settings, JSON (engine.features.comment_buy.syntax)."""
    return f"{_room(room)}:comment_buy"


def comment_buy_recent(room: str, user: str, sale_id: str, quantity: int) -> str:
    """String with a TTL: the grab request id of the user's last buy comment for this sale
    and quantity, so a repeat within the window replays it instead of buying again."""
    return f"{_room(room)}:comment_buy:recent:{user}:{sale_id}:{quantity}"


# ---- referrals (share links) ------------------------------------------------------------


def referral_names(room: str) -> str:
    """Hash: referrer -> their display name, stored when they made a share link."""
    return f"{_room(room)}:referral_names"


def referred_by(room: str) -> str:
    """Hash: viewer -> "referrer joined_at_ms", the first valid share link they came through."""
    return f"{_room(room)}:referred_by"


def referral_board(room: str) -> str:
    """Sorted set: referrer -> viewers attributed to them (the invite leaderboard)."""
    return f"{_room(room)}:referral_board"


# ---- reminders ----------------------------------------------------------------------------


def reminder_subscribers(room: str) -> str:
    """Hash: subscribed user -> when they subscribed (ms)."""
    return f"{_room(room)}:reminder_subs"


def reminder_scan(room: str) -> str:
    """Hash: "sales" -> the highest sale number already looked at for a reminder."""
    return f"{_room(room)}:reminder_scan"


def reminder_due(room: str) -> str:
    """Sorted set: reminder event id -> when it is due (ms); while a process delivers it,
    when that process's lease ends. Done events leave it."""
    return f"{_room(room)}:reminder_due"


def reminder_event(room: str, event: str) -> str:
    """Hash: one reminder event (kind, due_at, state, owner, attempt, payload JSON, counts)."""
    return f"{_room(room)}:reminder:{event}"


def reminder_sent(room: str, event: str) -> str:
    """Set: users the event was delivered to (the per-(event, user) marker)."""
    return f"{_room(room)}:reminder:{event}:sent"


# ---- group buys -----------------------------------------------------------------------------


def groupbuy_counter(room: str) -> str:
    return f"{_room(room)}:groupbuy_seq"


def groupbuys(room: str) -> str:
    """Sorted set: group-buy deal id -> its number (creation order)."""
    return f"{_room(room)}:groupbuys"


def groupbuy(room: str, deal_id: str) -> str:
    """Hash: the deal's terms (sku, group price, team size, window, private sale), its team
    counter, and `r:<reservation>` -> team id for every member's unit."""
    return f"{_room(room)}:groupbuy:{deal_id}"


def groupbuy_teams(room: str, deal_id: str) -> str:
    """Sorted set: the deal's team ids -> their number."""
    return f"{_room(room)}:groupbuy:{deal_id}:teams"


def groupbuy_team(room: str, deal_id: str, team_id: str) -> str:
    """Hash: a team's state, leader, deadline, member count, `member:<n>` -> JSON and
    `user:<user>` -> n."""
    return f"{_room(room)}:groupbuy:{deal_id}:team:{team_id}"


def groupbuy_due(room: str) -> str:
    """Sorted set: "<deal>.<team>" -> when the sweeper should look at it (an open team's
    deadline; a failed team's settle time until its members are unwound)."""
    return f"{_room(room)}:groupbuy_due"
