-- Claim a due reminder event for delivery. One caller wins: its lease becomes the event's
-- score, so the event is not due again until the lease ends; if the owner dies (or hangs
-- past it), the next claim takes the event over and resumes the undelivered users.
-- KEYS[1] - the due sorted set (event id -> due ms, or lease end while claimed)
-- KEYS[2] - the event hash
-- ARGV[1] - the event id
-- ARGV[2] - now in ms, or "" for Redis server time
-- ARGV[3] - lease (ms)
-- ARGV[4] - the claimer's token
-- returns {"ok", attempt, kind, payload, due_at} | {"no", "gone" | "not_due"}
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score then
  return {'no', 'gone'}
end
local clock_arg = ARGV[2]
--!include _now
if tonumber(score) > now then
  return {'no', 'not_due'}
end
local lease_until = now + tonumber(ARGV[3])
redis.call('ZADD', KEYS[1], lease_until, ARGV[1])
local attempt = redis.call('HINCRBY', KEYS[2], 'attempt', 1)
redis.call('HSET', KEYS[2], 'state', 'delivering', 'owner', ARGV[4], 'lease_until', lease_until)
local f = redis.call('HMGET', KEYS[2], 'kind', 'payload', 'due_at')
return {'ok', attempt, f[1], f[2], f[3]}
