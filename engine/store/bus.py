"""Which pub/sub carries a room's bus (`lc:{room}:bus`) between engine processes.

- `sharded` (SSUBSCRIBE / SPUBLISH, Redis >= 7): a message goes only to the shard that
  owns the channel's slot, which is the room's slot. On a Redis Cluster, adding shards
  then adds fan-out capacity, and each engine process holds one subscription connection
  per shard that has its rooms.
- `plain` (SUBSCRIBE / PUBLISH): on a Redis Cluster every message is broadcast over the
  cluster bus to every node, so fan-out does not scale with shards. The only choice
  before Redis 7.

`auto` (the default) picks `sharded` when every Redis node is 7 or newer. Publishers and
subscribers must agree: a PUBLISH never reaches an SSUBSCRIBE. Engines choose when they
start, so after upgrading Redis from 6 to 7, restart the engines (or pin the mode with
`LIVECART_PUBSUB` during the upgrade).
"""

from __future__ import annotations

import enum
import logging
from typing import Any

from redis.asyncio import Redis

from engine.store import redis_client

log = logging.getLogger("livecart.bus")

SHARDED_SINCE = 7


class PubSubMode(enum.StrEnum):
    SHARDED = "sharded"
    PLAIN = "plain"

    @property
    def publish_command(self) -> str:
        return "SPUBLISH" if self is PubSubMode.SHARDED else "PUBLISH"

    @property
    def subscribed_kind(self) -> str:
        """The `type` of a message that confirms a subscription."""
        return "ssubscribe" if self is PubSubMode.SHARDED else "subscribe"

    @property
    def message_kind(self) -> str:
        return "smessage" if self is PubSubMode.SHARDED else "message"


def major_version(info: Any) -> int:
    """The lowest Redis major version in an INFO reply: one server's dict, or a cluster
    client's dict of one reply per node."""
    replies = [info] if "redis_version" in info else list(info.values())
    return min(int(str(reply["redis_version"]).split(".", 1)[0]) for reply in replies)


async def choose(setting: str, redis: Redis) -> PubSubMode:
    """The mode for `setting` (`auto`, `sharded` or `plain`) on this Redis."""
    if setting != "auto":
        return PubSubMode(setting)
    version = major_version(await redis.info("server"))
    mode = PubSubMode.SHARDED if version >= SHARDED_SINCE else PubSubMode.PLAIN
    log.info("room bus uses %s pub/sub (Redis %d%s)", mode, version,
             ", cluster" if redis_client.is_cluster(redis) else "")  # fmt: skip
    return mode
