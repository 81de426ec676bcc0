-- Enter a user into an open giveaway (idempotent: one entry per user, the first name kept).
-- The entry rule and the limits are checked by the caller; the draw re-applies the limits.
-- KEYS[1] - the giveaway hash
-- KEYS[2] - the giveaway's entrants hash (user -> display name)
-- ARGV[1] - now in ms, or "" for Redis server time
-- ARGV[2] - user id
-- ARGV[3] - the user's display name
-- returns {"ok", 1 if newly entered else 0, entrants} | {"err", "giveaway_not_found" | "giveaway_closed"}
local state = redis.call('HGET', KEYS[1], 'state')
if not state then
  return {'err', 'giveaway_not_found'}
end
local clock_arg = ARGV[1]
--!include _now
if state ~= 'open' or now >= tonumber(redis.call('HGET', KEYS[1], 'ends_at')) then
  return {'err', 'giveaway_closed'}
end
local added = redis.call('HSETNX', KEYS[2], ARGV[2], ARGV[3])
return {'ok', added, redis.call('HLEN', KEYS[2])}
