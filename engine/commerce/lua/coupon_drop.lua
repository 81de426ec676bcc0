-- Drop a batch of a coupon template into the room, now or after a countdown: never more
-- coupons in drops than the template's total. Logged for viewers (the drop card), unless
-- private: a giveaway's prize coupons, claimed only on its winners' behalf (coupon_claim.lua).
-- A tiered drop names the customer tiers that may claim (coupon_claim.lua checks them).
-- KEYS[1] - the drop hash (new)
-- KEYS[2] - room drops index (sorted set: drop id -> its number)
-- KEYS[3] - room coupon-issued hash (template id -> coupons in drops so far)
-- KEYS[4] - room log stream
-- KEYS[5] - room outbox stream
-- ARGV[1] - drop id
-- ARGV[2] - now in ms, or "" for Redis server time
-- ARGV[3] - countdown ms (0 opens now)
-- ARGV[4] - claim window ms
-- ARGV[5] - quantity
-- ARGV[6] - template id
-- ARGV[7] - the template's total
-- ARGV[8] - the template's per-user limit
-- ARGV[9] - approximate MAXLEN of the room log
-- ARGV[10] - approximate MAXLEN of the outbox
-- ARGV[11] - bus channel
-- ARGV[12] - the drop card, a JSON object (template terms shown to viewers)
-- ARGV[13] - the private drop's owner (e.g. "giveaway:g3"), or "" for a public drop
-- ARGV[14] - the tiers that may claim, a JSON array (["champions","loyal"]), or "" for all
-- returns {"ok", opens_at, closes_at, now} | {"err", "drop_exists" | "over_total", issued}
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {'err', 'drop_exists', ''}
end
local clock_arg = ARGV[2]
--!include _now
local quantity, total = tonumber(ARGV[5]), tonumber(ARGV[7])
local issued = tonumber(redis.call('HGET', KEYS[3], ARGV[6]) or '0')
if issued + quantity > total then
  return {'err', 'over_total', tostring(issued)}
end
redis.call('HSET', KEYS[3], ARGV[6], issued + quantity)
local opens = now + tonumber(ARGV[3])
local closes = opens + tonumber(ARGV[4])
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'template', ARGV[6], 'quantity', quantity,
  'remaining', quantity, 'claimed', 0, 'limit', ARGV[8], 'created_at', now,
  'opens_at', opens, 'closes_at', closes, 'seq', 0)
if ARGV[14] ~= '' then
  redis.call('HSET', KEYS[1], 'tiers', ARGV[14])
end
redis.call('ZADD', KEYS[2], tonumber(string.sub(ARGV[1], 2)), ARGV[1])
redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[10], '*', 'type', 'coupons_dropped',
  'drop', ARGV[1], 'template', ARGV[6], 'units', quantity, 'at', now)
if ARGV[13] ~= '' then
  redis.call('HSET', KEYS[1], 'private', ARGV[13])
  return {'ok', opens, closes, now}
end
local card = cjson.decode(ARGV[12])
card['drop'] = ARGV[1]
card['quantity'] = quantity
card['opens_at'] = opens
card['closes_at'] = closes
card['server_time'] = now
card['tiers'] = ARGV[14] ~= '' and cjson.decode(ARGV[14]) or cjson.null
local data = cjson.encode(card)
local entry = redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[9], '*', 'k', 'coupon_dropped',
  'r', ARGV[1], 'd', data)
redis.call(PUBLISH, ARGV[11], 'coupon_dropped\n' .. entry .. '\n' .. ARGV[1] .. '\n' .. data)
return {'ok', opens, closes, now}
