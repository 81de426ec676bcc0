"""Customers across shows: who watched each show, and for how long.

`show_viewers` holds one row per show and signed-in viewer: the watch time Redis keeps per
room (engine/rooms/watchtime.py), copied by engine/ledger/viewers.py while the show is on
and once more after it ends (`watch_copies.final`). With the orders of 0001 it makes each
buyer's profile in engine/ledger/customers.py (docs/ledger.md § Customers and RFM).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-08
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_TABLES = """
CREATE TABLE show_viewers (
    room     text   NOT NULL,
    user_id  text   NOT NULL,
    shop     text   NOT NULL,                -- the room's host, as in shows.shop
    watch_ms bigint NOT NULL,                -- sessions in progress counted up to the copy
    PRIMARY KEY (room, user_id)
);
CREATE INDEX show_viewers_shop_user ON show_viewers (shop, user_id);

CREATE TABLE watch_copies (
    room         text    PRIMARY KEY,
    copied_at_ms bigint  NOT NULL,
    final        boolean NOT NULL DEFAULT false  -- copied after the show ended: done
);
"""


def upgrade() -> None:
    for statement in _TABLES.split(";"):
        if statement.strip():
            op.execute(statement)


def downgrade() -> None:
    for table in ("watch_copies", "show_viewers"):
        op.execute(f"DROP TABLE {table}")
