-- Hand units of a private sale (an auction's lot, a giveaway's prizes) to one user at a
-- price fixed by the caller, once per award reference: the reservation record is the same
-- as a grab's plus its price ("p"), so checkout, expiry and the audit treat it as any other.
-- Ignores the sale's window and per-user limit (the host decided who gets it), never stock.
-- KEYS[1] - the sale hash
-- KEYS[2] - the sale's reservations hash (reservation id -> JSON record)
-- KEYS[3] - the sale's per-user units hash (user -> units held or sold)
-- KEYS[4] - the sale's answers hash ("award <ref>" -> answer JSON)
-- KEYS[5] - room expiry sorted set (reservation id -> expires_at ms)
-- KEYS[6] - room outbox stream
-- ARGV[1] - now in ms, or "" for Redis server time
-- ARGV[2] - approximate MAXLEN of the outbox
-- ARGV[3] - user
-- ARGV[4] - award reference, unique per award (e.g. "a3 1" for an auction's first offer)
-- ARGV[5] - units
-- ARGV[6] - unit price in minor units
-- ARGV[7] - hold ms (how long the user has to check out)
-- returns {"0" or "1" (replayed), answer JSON}; answer status "reserved" | "sold_out" | "sale_not_found"
local clock_arg = ARGV[1]
--!include _now
local answer_key = 'award ' .. ARGV[4]
local previous = redis.call('HGET', KEYS[4], answer_key)
if previous then
  return {'1', previous}
end
local sale = redis.call('HMGET', KEYS[1], 'id', 'available', 'res_seq', 'currency')
if not sale[1] then
  return {'0', '{"status":"sale_not_found"}'}
end
local user, quantity, price = ARGV[3], tonumber(ARGV[5]), tonumber(ARGV[6])
local available, seq = tonumber(sale[2]), tonumber(sale[3]) + 1
if quantity > available then
  -- Not remembered: the same award may succeed once the units come back.
  return {'0', '{"status":"sold_out","available":' .. available .. '}'}
end
do
  local reservation = sale[1] .. '.' .. seq
  local expires = now + tonumber(ARGV[7])
  redis.call('HINCRBY', KEYS[3], user, quantity)
  redis.call('HSET', KEYS[2], reservation, cjson.encode({u = user, q = quantity, s = 'held',
    e = expires, c = now, p = price}))
  redis.call('ZADD', KEYS[5], expires, reservation)
  redis.call('HSET', KEYS[1], 'available', available - quantity, 'res_seq', seq)
  redis.call('HINCRBY', KEYS[1], 'reserved', quantity)
  redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[2], '*', 'type', 'reserved', 'sale', sale[1],
    'reservation', reservation, 'user', user, 'units', quantity, 'at', now)
  local answer = cjson.encode({status = 'reserved', reservation = reservation,
    quantity = quantity, expires_at = expires, price = price, currency = sale[4]})
  redis.call('HSET', KEYS[4], answer_key, answer)
  return {'0', answer}
end
