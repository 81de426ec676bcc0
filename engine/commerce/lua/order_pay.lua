-- Apply a verified payment event to an order, exactly once per payment id. A success marks
-- the order paid, its reservations sold and its coupons used. Late payments follow the
-- policy in docs/orders.md: an order past its deadline (expired, or not yet swept) is
-- completed if every unit is still held for it or can be re-taken from available stock
-- (within the per-user cap) and every coupon is still the buyer's to use; otherwise, and
-- always for a cancelled order or a second payment of a paid one, the payment is marked
-- for an automatic refund.
-- KEYS[1] - the order hash
-- KEYS[2] - room payments hash (payment id -> JSON record)
-- KEYS[3] - room order expiry sorted set
-- KEYS[4] - room coupons hash
-- KEYS[5] - room reservation expiry sorted set
-- KEYS[6] - room order events stream
-- KEYS[7] - room outbox stream (stock events)
-- KEYS[8] - room order counts hash (a late payment counts the order again)
-- KEYS[9] - room show metrics hash (engine/store/meter.py's layout)
-- KEYS[10] - room paid buyers set (users with a paid order)
-- KEYS[11..n] - per sale of the order, three keys: sale hash, reservations hash, users hash
-- ARGV[1] - now in ms, or "" for Redis server time
-- ARGV[2] - approximate MAXLEN of the order events stream
-- ARGV[3] - approximate MAXLEN of the outbox
-- ARGV[4] - payment id
-- ARGV[5] - event: "succeeded" | "failed"
-- ARGV[6] - amount (minor units)
-- ARGV[7] - currency
-- ARGV[8] - "1" to count a completed order in the show metrics (with the outcome), "0" not to
-- ARGV[9..n] - per line: reservation id, index into KEYS of its sale hash (the reservations
--   and users hashes follow it)
-- returns {"paid", late "0"|"1"} | {"refund", reason} | {"duplicate", payment state}
--   | {"failed", order state} | {"ignored", payment state} | {"err", code, detail}
local clock_arg = ARGV[1]
--!include _now
--!include _metrics
local order = redis.call('HMGET', KEYS[1], 'id', 'state', 'total', 'currency', 'user',
  'coupons', 'device', 'expires_at')
if not order[1] then
  return {'err', 'order_not_found', ''}
end
local order_id, state, total, currency, user = order[1], order[2], tonumber(order[3]), order[4], order[5]
local payment_id, event = ARGV[4], ARGV[5]
local amount = tonumber(ARGV[6])
local raw_payment = redis.call('HGET', KEYS[2], payment_id)
local payment = raw_payment and cjson.decode(raw_payment)
if payment and payment['o'] ~= order_id then
  return {'err', 'payment_mismatch', 'payment ' .. payment_id .. ' belongs to order ' .. payment['o']}
end
if amount ~= total or ARGV[7] ~= currency then
  return {'err', 'payment_mismatch', 'order ' .. order_id .. ' is ' .. total .. ' ' .. currency}
end
local function record(s, extra)
  local p = payment or {o = order_id, a = amount, c = currency, r = 0, at = now}
  p['s'] = s
  p['x'] = now
  for k, v in pairs(extra or {}) do p[k] = v end
  redis.call('HSET', KEYS[2], payment_id, cjson.encode(p))
end
local function event_out(kind, extra)
  local fields = {'type', kind, 'order', order_id, 'payment', payment_id, 'user', user,
    'amount', amount, 'currency', currency, 'at', now}
  for _, v in ipairs(extra or {}) do fields[#fields + 1] = v end
  redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[2], '*', unpack(fields))
end

if event == 'failed' then
  if payment and payment['s'] ~= 'failed' then
    return {'ignored', payment['s']}  -- a failure reported after the outcome: out of order
  end
  record('failed')
  event_out('payment_failed', {'state', state})
  return {'failed', state}
end
if payment and payment['s'] ~= 'failed' then
  return {'duplicate', payment['s']}
end

local function refund(reason)
  record('refund_due', {reason = reason})
  event_out('payment_refund_due', {'reason', reason, 'state', state})
  return {'refund', reason}
end
if state == 'cancelled' then
  return refund('order_cancelled')
end
if state ~= 'pending_payment' and state ~= 'expired' then
  return refund('already_paid')
end

-- First pass: can every line and coupon be completed for this order?
local lines = {}
local take = {}  -- units re-taken from available stock, per sale key index
for i = 9, #ARGV, 2 do
  local rid, k = ARGV[i], tonumber(ARGV[i + 1])
  local raw = redis.call('HGET', KEYS[k + 1], rid)
  if not raw then
    return refund('reservation_missing')
  end
  local r = cjson.decode(raw)
  -- Still held for this order, or for this buyer just after the order ended (its release
  -- unlinks the hold one script before the units go back).
  local held = r['s'] == 'held' and (r['o'] == order_id or (r['o'] == nil and r['u'] == user))
  if not held then
    if r['s'] ~= 'expired' and r['s'] ~= 'released' then
      return refund('reservation_' .. r['s'])
    end
    take[k] = (take[k] or 0) + r['q']
  end
  lines[#lines + 1] = {rid, k, r, held}
end
for k, units in pairs(take) do
  if tonumber(redis.call('HGET', KEYS[k], 'available')) < units then
    return refund('sold_out')
  end
  -- The buyer may have grabbed again since the order expired: never above the cap.
  local holding = tonumber(redis.call('HGET', KEYS[k + 2], user) or '0')
  if holding + units > tonumber(redis.call('HGET', KEYS[k], 'limit')) then
    return refund('limit_reached')
  end
end
local coupons = {}
for cid in string.gmatch(order[6] or '', '%S+') do
  local c = cjson.decode(redis.call('HGET', KEYS[4], cid))
  local mine = (c['s'] == 'locked' and c['o'] == order_id) or (c['s'] == 'claimed' and c['u'] == user)
  if not mine then
    return refund('coupon_' .. c['s'])
  end
  coupons[#coupons + 1] = {cid, c}
end

-- Second pass: complete it.
-- Late is judged by the clock, not only by the state: a payment a few ms past the deadline,
-- before the sweeper has expired the order, is late too.
local late = next(take) ~= nil or state == 'expired' or now > tonumber(order[8] or now)
for _, line in ipairs(lines) do
  local rid, k, r, held = line[1], line[2], line[3], line[4]
  local sale = redis.call('HGET', KEYS[k], 'id')
  if held then
    redis.call('HINCRBY', KEYS[k], 'reserved', -r['q'])
    redis.call('ZREM', KEYS[5], rid)
  else
    redis.call('HINCRBY', KEYS[k], 'available', -r['q'])
    redis.call('HINCRBY', KEYS[k + 2], r['u'], r['q'])
    r['late'] = 1
  end
  redis.call('HINCRBY', KEYS[k], 'sold', r['q'])
  r['s'] = 'sold'
  r['o'] = order_id
  r['x'] = now
  redis.call('HSET', KEYS[k + 1], rid, cjson.encode(r))
  redis.call('XADD', KEYS[7], 'MAXLEN', '~', ARGV[3], '*', 'type', 'sold', 'sale', sale,
    'reservation', rid, 'user', r['u'], 'units', r['q'], 'order', order_id, 'at', now)
end
for _, item in ipairs(coupons) do
  item[2]['s'] = 'used'
  item[2]['o'] = order_id
  item[2]['x'] = now
  redis.call('HSET', KEYS[4], item[1], cjson.encode(item[2]))
end
redis.call('HSET', KEYS[1], 'state', 'paid', 'paid_at', now, 'payment', payment_id,
  'late', late and 1 or 0)
redis.call('ZREM', KEYS[3], order_id)
if state == 'expired' then
  redis.call('HINCRBY', KEYS[8], 'u:' .. user, 1)
  if order[7] and order[7] ~= '' then
    redis.call('HINCRBY', KEYS[8], 'd:' .. order[7], 1)
  end
end
if ARGV[8] == '1' then
  count_metric(KEYS[9], 'paid_orders', 1, currency)
  count_metric(KEYS[9], 'gmv.' .. currency, total)
  if #coupons > 0 then
    count_metric(KEYS[9], 'coupon_redemptions', #coupons)
  end
  if redis.call('SADD', KEYS[10], user) == 1 then
    count_metric(KEYS[9], 'paid_buyers', 1)
  end
end
record('succeeded')
event_out('order_paid', {'late', late and 1 or 0})
return {'paid', late and '1' or '0'}
