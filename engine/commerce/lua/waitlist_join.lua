-- Put a viewer who met a sold-out sale on its waitlist (once; a second join answers the
-- same position). Units that come back to stock go to the waitlist first.
-- KEYS[1] - the sale hash
-- KEYS[2] - the sale's per-user units hash
-- KEYS[3] - the sale's waitlist (list of users in arrival order)
-- KEYS[4] - the sale's waitlist members (set)
-- ARGV[1] - now in ms, or "" for Redis server time
-- ARGV[2] - user
-- returns {"ok", position (1-based)} | {"err", "sale_not_found" | "not_started" | "ended"
--   | "available" | "limit_reached"}
local clock_arg = ARGV[1]
--!include _now
local sale = redis.call('HMGET', KEYS[1], 'starts_at', 'ends_at', 'available', 'limit', 'private')
if not sale[1] or sale[5] then
  return {'err', 'sale_not_found'}
end
if now >= tonumber(sale[2]) then
  return {'err', 'ended'}
end
if now < tonumber(sale[1]) then
  return {'err', 'not_started'}
end
if redis.call('SISMEMBER', KEYS[4], ARGV[2]) == 1 then
  return {'ok', redis.call('LPOS', KEYS[3], ARGV[2]) + 1}
end
if tonumber(sale[3]) > 0 then
  return {'err', 'available'}
end
if tonumber(redis.call('HGET', KEYS[2], ARGV[2]) or '0') + 1 > tonumber(sale[4]) then
  return {'err', 'limit_reached'}
end
redis.call('SADD', KEYS[4], ARGV[2])
return {'ok', redis.call('RPUSH', KEYS[3], ARGV[2])}
