-- Finish a reminder event (every subscriber tried, or nothing to send), if the caller
-- still owns it: it leaves the due set for good.
-- KEYS[1] - the due sorted set
-- KEYS[2] - the event hash
-- ARGV[1] - the event id
-- ARGV[2] - the owner's token
-- ARGV[3] - the final state ("done" | "skipped")
-- ARGV[4] - users delivered to
-- ARGV[5] - users whose delivery failed (the notifier gave up)
-- ARGV[6] - now in ms, or "" for Redis server time
-- returns 1 if finished, 0 if another process took the event over
local f = redis.call('HMGET', KEYS[2], 'state', 'owner')
if f[1] ~= 'delivering' or f[2] ~= ARGV[2] then
  return 0
end
local clock_arg = ARGV[6]
--!include _now
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], 'state', ARGV[3], 'delivered', ARGV[4], 'failed', ARGV[5],
  'finished_at', now)
return 1
