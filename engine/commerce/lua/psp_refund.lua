-- The simulated provider's refund, atomically and idempotently by refund id (as a real
-- provider's idempotency key is): two callers asking for the same refund at once get one
-- refund, and refunds never add up to more than was paid. The caller records the refund's
-- settlement line on "refunded" only, so a replay adds none.
-- KEYS[1] - the provider's payment hash
-- ARGV[1] - refund id
-- ARGV[2] - amount (minor units)
-- returns {"refunded", amount} | {"replay", amount already recorded for that id}
--   | {"err", "state", payment state} | {"err", "over", already refunded}
local field = 'refund:' .. ARGV[1]
local previous = redis.call('HGET', KEYS[1], field)
if previous then
  return {'replay', previous}
end
local payment = redis.call('HMGET', KEYS[1], 'state', 'amount', 'refunded')
if payment[1] ~= 'succeeded' then
  return {'err', 'state', payment[1] or 'missing'}
end
local amount = tonumber(ARGV[2])
if tonumber(payment[3]) + amount > tonumber(payment[2]) then
  return {'err', 'over', payment[3]}
end
redis.call('HINCRBY', KEYS[1], 'refunded', amount)
redis.call('HSET', KEYS[1], field, amount)
return {'refunded', ARGV[2]}
