-- Refund a paid order in full or in part, optionally returning some lines' units to stock.
-- Never refunds more than was paid; the same refund id always gets the same answer.
-- KEYS[1] - the order hash
-- KEYS[2] - room payments hash
-- KEYS[3] - room order events stream
-- KEYS[4] - room outbox stream (stock events)
-- KEYS[5..n] - per sale to restock, three keys: sale hash, reservations hash, users hash
-- ARGV[1] - now in ms, or "" for Redis server time
-- ARGV[2] - approximate MAXLEN of the order events stream
-- ARGV[3] - approximate MAXLEN of the outbox
-- ARGV[4] - refund id
-- ARGV[5] - amount (minor units)
-- ARGV[6] - reason
-- ARGV[7] - who
-- ARGV[8..n] - per line to restock: reservation id, index into KEYS of its sale hash
-- returns {"ok", state, refunded} | {"replay", state, refunded} | {"err", code, detail}
local clock_arg = ARGV[1]
--!include _now
local order = redis.call('HMGET', KEYS[1], 'id', 'state', 'total', 'refunded', 'payment', 'user',
  'currency')
if not order[1] then
  return {'err', 'order_not_found', ''}
end
local order_id, state, total, refunded = order[1], order[2], tonumber(order[3]), tonumber(order[4])
local refund_field = 'refund:' .. ARGV[4]
if redis.call('HEXISTS', KEYS[1], refund_field) == 1 then
  return {'replay', state, tostring(refunded)}
end
if state ~= 'paid' and state ~= 'fulfilled' and state ~= 'partially_refunded' then
  return {'err', 'illegal_transition', state}
end
local amount = tonumber(ARGV[5])
if refunded + amount > total then
  return {'err', 'refund_too_large', tostring(total - refunded)}
end
local lines = {}
for i = 8, #ARGV, 2 do
  local rid, k = ARGV[i], tonumber(ARGV[i + 1])
  local raw = redis.call('HGET', KEYS[k + 1], rid)
  local r = raw and cjson.decode(raw)
  if not r or r['s'] ~= 'sold' or r['o'] ~= order_id then
    return {'err', 'not_restockable', rid .. ' ' .. (r and r['s'] or 'missing')}
  end
  lines[#lines + 1] = {rid, k, r}
end
for _, line in ipairs(lines) do
  local rid, k, r = line[1], line[2], line[3]
  redis.call('HINCRBY', KEYS[k], 'sold', -r['q'])
  redis.call('HINCRBY', KEYS[k], 'available', r['q'])
  redis.call('HINCRBY', KEYS[k + 2], r['u'], -r['q'])
  r['s'] = 'returned'
  r['x'] = now
  redis.call('HSET', KEYS[k + 1], rid, cjson.encode(r))
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[3], '*', 'type', 'returned',
    'sale', redis.call('HGET', KEYS[k], 'id'), 'reservation', rid, 'user', r['u'],
    'units', r['q'], 'order', order_id, 'at', now)
end
refunded = refunded + amount
local new_state = refunded == total and 'refunded' or 'partially_refunded'
redis.call('HSET', KEYS[1], 'state', new_state, 'refunded', refunded, refund_field,
  cjson.encode({amount = amount, reason = ARGV[6], by = ARGV[7], at = now,
    restocked = #lines}))
local raw_payment = redis.call('HGET', KEYS[2], order[5])
if raw_payment then
  local p = cjson.decode(raw_payment)
  p['r'] = (p['r'] or 0) + amount
  redis.call('HSET', KEYS[2], order[5], cjson.encode(p))
end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[2], '*', 'type', 'order_' .. new_state,
  'order', order_id, 'user', order[6], 'refund', ARGV[4], 'amount', amount,
  'currency', order[7], 'refunded', refunded, 'at', now)
return {'ok', new_state, tostring(refunded)}
