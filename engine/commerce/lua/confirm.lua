-- Turn a held reservation into sold (checkout calls this once the order is paid). Fails
-- cleanly, changing nothing, if the reservation was released, expired (even if the sweeper
-- has not got to it yet) or already sold.
-- KEYS[1] - the sale hash
-- KEYS[2] - the sale's reservations hash
-- KEYS[3] - room expiry sorted set
-- KEYS[4] - room outbox stream
-- ARGV[1] - now in ms, or "" for Redis server time
-- ARGV[2] - approximate MAXLEN of the outbox
-- ARGV[3] - reservation id
-- ARGV[4] - order id
-- returns {"ok", user, units} | {"err", "not_found" | "expired" | "not_held", state}
local clock_arg = ARGV[1]
--!include _now
local raw = redis.call('HGET', KEYS[2], ARGV[3])
if not raw then
  return {'err', 'not_found', ''}
end
local record = cjson.decode(raw)
if record['s'] ~= 'held' then
  return {'err', 'not_held', record['s']}
end
if record['e'] <= now then
  return {'err', 'expired', 'held'}
end
record['s'] = 'sold'
record['o'] = ARGV[4]
record['x'] = now
redis.call('HSET', KEYS[2], ARGV[3], cjson.encode(record))
redis.call('ZREM', KEYS[3], ARGV[3])
redis.call('HINCRBY', KEYS[1], 'reserved', -record['q'])
redis.call('HINCRBY', KEYS[1], 'sold', record['q'])
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[2], '*', 'type', 'sold', 'sale',
  redis.call('HGET', KEYS[1], 'id'), 'reservation', ARGV[3], 'user', record['u'],
  'units', record['q'], 'order', ARGV[4], 'at', now)
return {'ok', record['u'], record['q']}
