-- The host adjusts a sale: "topup" adds units (the waitlist is served first), "extend" moves
-- the end later, "stop" ends it now (and empties the waitlist). Logged for viewers.
-- KEYS[1] - the sale hash
-- KEYS[2] - the sale's reservations hash
-- KEYS[3] - the sale's per-user units hash
-- KEYS[4] - room expiry sorted set
-- KEYS[5] - room outbox stream
-- KEYS[6] - the sale's waitlist (list)
-- KEYS[7] - the sale's waitlist members (set)
-- KEYS[8] - room log stream
-- ARGV[1] - now in ms, or "" for Redis server time
-- ARGV[2] - approximate MAXLEN of the outbox
-- ARGV[3] - bus channel
-- ARGV[4] - approximate MAXLEN of the room log
-- ARGV[5] - "topup" | "extend" | "stop"
-- ARGV[6] - units (topup) or ms (extend); ignored for stop
-- returns {"ok", ends_at, allotment + topups} | {"err", "sale_not_found" | "ended"}
local clock_arg = ARGV[1]
--!include _now
--!include _waitlist
local sale = redis.call('HMGET', KEYS[1], 'id', 'ends_at', 'allotment', 'topups')
if not sale[1] then
  return {'err', 'sale_not_found'}
end
local id, ends = sale[1], tonumber(sale[2])
if now >= ends then
  return {'err', 'ended'}
end
local action, amount = ARGV[5], tonumber(ARGV[6])
local kind = 'sale_updated'
if action == 'topup' then
  redis.call('HINCRBY', KEYS[1], 'topups', amount)
  redis.call('HINCRBY', KEYS[1], 'available', amount)
  serve_waitlist(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], now, ARGV[2], ARGV[3])
elseif action == 'extend' then
  ends = ends + amount
  redis.call('HSET', KEYS[1], 'ends_at', ends)
else
  ends = now
  kind = 'sale_ended'
  redis.call('HSET', KEYS[1], 'ends_at', ends, 'stopped_at', now)
  redis.call('DEL', KEYS[6], KEYS[7])
end
local total = tonumber(sale[3]) + tonumber(redis.call('HGET', KEYS[1], 'topups'))
local data = '{"sale":"' .. id .. '","ends_at":' .. ends .. ',"units":' .. total .. '}'
local entry = redis.call('XADD', KEYS[8], 'MAXLEN', '~', ARGV[4], '*', 'k', kind, 'r', id, 'd', data)
redis.call(PUBLISH, ARGV[3], kind .. '\n' .. entry .. '\n' .. id .. '\n' .. data)
redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[2], '*', 'type', 'sale_' .. action, 'sale', id,
  'amount', ARGV[6], 'at', now)
return {'ok', ends, total}
