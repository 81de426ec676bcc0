-- Publish one message on a room's bus (for messages that are not log entries: notices to
-- one user, moderation changes). A script, not a PUBLISH from Python, so that the bus's
-- pub/sub flavour (PUBLISH or SPUBLISH, engine/store/bus.py) is chosen in one place.
-- KEYS[1] - the room's bus channel (a key only so that a cluster routes it to the room's slot)
-- ARGV[1] - the message
-- returns the number of subscribers that received it on this shard
return redis.call(PUBLISH, KEYS[1], ARGV[1])
