-- Extend the lease on a reminder event being delivered, if the caller still owns it.
-- KEYS[1] - the due sorted set
-- KEYS[2] - the event hash
-- ARGV[1] - the event id
-- ARGV[2] - the owner's token
-- ARGV[3] - now in ms, or "" for Redis server time
-- ARGV[4] - lease (ms)
-- returns 1 if the lease is extended, 0 if another process took the event over (stop)
local f = redis.call('HMGET', KEYS[2], 'state', 'owner')
if f[1] ~= 'delivering' or f[2] ~= ARGV[2] then
  return 0
end
local clock_arg = ARGV[3]
--!include _now
local lease_until = now + tonumber(ARGV[4])
redis.call('ZADD', KEYS[1], lease_until, ARGV[1])
redis.call('HSET', KEYS[2], 'lease_until', lease_until)
return 1
