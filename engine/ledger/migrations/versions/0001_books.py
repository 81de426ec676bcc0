"""The books: shows, order events, orders, payments, refunds, coupon uses, adjustments.

Money is integer minor units (bigint) with its currency beside it; times are ms since the
epoch (bigint), as the engine's events carry them. `version` orders a row's updates: the
order events stream id of the newest event applied (engine/ledger/rows.py `version`), so a
late or repeated write never takes a row back. Personal data (addresses, contacts) sits in
its own columns, which retention and erasure empty (docs/ledger.md).

Revision ID: 0001
Revises:
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_TABLES = """
CREATE TABLE shows (
    room          text PRIMARY KEY,
    shop          text NOT NULL,             -- the host's user id: one shop per host
    title         text NOT NULL DEFAULT '',
    state         text NOT NULL,
    created_at_ms bigint,
    started_at_ms bigint,
    ended_at_ms   bigint,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX shows_shop ON shows (shop);

CREATE TABLE order_events (
    room       text   NOT NULL,
    event_id   text   NOT NULL,              -- the Redis stream entry id
    version    bigint NOT NULL,
    type       text   NOT NULL,
    order_id   text,
    user_id    text,
    payment_id text,
    amount     bigint,
    currency   text,
    at_ms      bigint NOT NULL,
    data       jsonb  NOT NULL,
    written_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (room, event_id)
);
CREATE INDEX order_events_order ON order_events (room, order_id);
CREATE INDEX order_events_at ON order_events (at_ms);

CREATE TABLE orders (
    room             text    NOT NULL,
    order_id         text    NOT NULL,
    shop             text    NOT NULL,
    user_id          text    NOT NULL,
    device           text,
    state            text    NOT NULL,
    currency         text    NOT NULL,
    subtotal         bigint  NOT NULL,
    discount         bigint  NOT NULL,
    shipping         bigint  NOT NULL,
    total            bigint  NOT NULL,
    refunded         bigint  NOT NULL,
    coupons          jsonb   NOT NULL,       -- coupon ids, a JSON array
    lines            jsonb   NOT NULL,
    created_at_ms    bigint  NOT NULL,
    paid_at_ms       bigint,
    closed_at_ms     bigint,
    fulfilled_at_ms  bigint,
    payment_id       text,
    late_payment     boolean NOT NULL DEFAULT false,
    shipping_address jsonb,                  -- personal: emptied by retention and erasure
    contact          jsonb,                  -- personal: emptied by retention and erasure
    version          bigint  NOT NULL,
    PRIMARY KEY (room, order_id)
);
CREATE INDEX orders_shop_user ON orders (shop, user_id);
CREATE INDEX orders_payment ON orders (payment_id);
CREATE INDEX orders_paid_at ON orders (paid_at_ms);

CREATE TABLE payments (
    payment_id text   PRIMARY KEY,           -- the provider's id, as the order records it
    room       text   NOT NULL,
    order_id   text   NOT NULL,
    user_id    text   NOT NULL,
    amount     bigint NOT NULL,
    currency   text   NOT NULL,
    state      text   NOT NULL,              -- succeeded | failed | refund_due | refunded
    reason     text,                         -- why an automatic refund is due
    at_ms      bigint NOT NULL,
    version    bigint NOT NULL
);
CREATE INDEX payments_order ON payments (room, order_id);

CREATE TABLE refunds (
    room       text   NOT NULL,
    refund_id  text   NOT NULL,
    order_id   text   NOT NULL,
    payment_id text,
    amount     bigint NOT NULL,
    currency   text   NOT NULL,
    reason     text   NOT NULL DEFAULT '',
    at_ms      bigint NOT NULL,
    PRIMARY KEY (room, refund_id)
);
CREATE INDEX refunds_payment ON refunds (payment_id);

CREATE TABLE coupon_uses (
    room     text   NOT NULL,
    coupon   text   NOT NULL,
    order_id text   NOT NULL,
    user_id  text   NOT NULL,
    at_ms    bigint NOT NULL,
    PRIMARY KEY (room, coupon)
);

CREATE TABLE adjustments (
    id        bigserial   PRIMARY KEY,
    day       date        NOT NULL,          -- the settlement day reconciled
    room      text,
    class     text        NOT NULL,          -- the reconciliation class fixed
    reference text        NOT NULL,          -- what it is about (payment, refund, order)
    remedy    text        NOT NULL,
    who       text        NOT NULL,
    why       text        NOT NULL,
    detail    jsonb       NOT NULL DEFAULT '{}',
    at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (class, reference)
);

CREATE TABLE erasures (
    shop      text        NOT NULL,
    user_id   text        NOT NULL,          -- kept: the request's own record
    who       text        NOT NULL,
    at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (shop, user_id)
);
"""


def upgrade() -> None:
    for statement in _TABLES.split(";"):
        if statement.strip():
            op.execute(statement)


def downgrade() -> None:
    for table in ("erasures", "adjustments", "coupon_uses", "refunds", "payments", "orders",
                  "order_events", "shows"):  # fmt: skip
        op.execute(f"DROP TABLE {table}")
