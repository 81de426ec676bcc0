-- Create an order from a viewer's held reservations and claimed coupons, atomically:
-- idempotency by key, blocklist, per-user and per-device order limits, and that every
-- reservation and coupon is still exactly as priced. Takes no stock: the reservations
-- move into the order (their hold becomes the order's payment deadline, capped by any
-- reservation's own deadline `d`) and the coupons are locked to it.
-- KEYS[1] - the order hash (new)
-- KEYS[2] - room orders index (sorted set: order id -> its number)
-- KEYS[3] - room order keys hash ("user key" -> order id)
-- KEYS[4] - room order expiry sorted set
-- KEYS[5] - room order counts hash ("u:<user>" / "d:<device>" -> open or paid orders)
-- KEYS[6] - room user orders hash (user -> space-separated order ids)
-- KEYS[7] - room blocklist set ("u:<user>" / "d:<device>")
-- KEYS[8] - room coupons hash
-- KEYS[9] - room reservation expiry sorted set
-- KEYS[10] - room order events stream
-- KEYS[11] - room show metrics hash (engine/store/meter.py's layout)
-- KEYS[12..n] - the reservations hashes of the sales involved
-- ARGV[1] - now in ms, or "" for Redis server time
-- ARGV[2] - approximate MAXLEN of the order events stream
-- ARGV[3] - order id
-- ARGV[4] - user
-- ARGV[5] - device, or ""
-- ARGV[6] - idempotency key
-- ARGV[7] - payment window ms (the order's deadline from now)
-- ARGV[8] - max open or paid orders per user
-- ARGV[9] - max open or paid orders per device
-- ARGV[10] - number of reservations R
-- ARGV[11] - number of coupons C
-- ARGV[12] - "1" to count the order in the show metrics (with the outcome), "0" not to
-- ARGV[13..n] - R triples (reservation id, index into KEYS of its reservations hash, units
--   priced), then C triples (coupon id, valid_from, valid_until), then the order's
--   field, value pairs
-- returns {"ok", order id} | {"replay", order id} | {"err", code, detail}
local clock_arg = ARGV[1]
--!include _now
--!include _metrics
local order_id, user, device, key = ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local existing = redis.call('HGET', KEYS[3], user .. ' ' .. key)
if existing then
  return {'replay', existing}
end
if redis.call('SISMEMBER', KEYS[7], 'u:' .. user) == 1 then
  return {'err', 'blocked', 'user'}
end
if device ~= '' and redis.call('SISMEMBER', KEYS[7], 'd:' .. device) == 1 then
  return {'err', 'blocked', 'device'}
end
if tonumber(redis.call('HGET', KEYS[5], 'u:' .. user) or '0') >= tonumber(ARGV[8]) then
  return {'err', 'order_limit', 'user'}
end
if device ~= '' and tonumber(redis.call('HGET', KEYS[5], 'd:' .. device) or '0') >= tonumber(ARGV[9]) then
  return {'err', 'order_limit', 'device'}
end
local n_res, n_coupons = tonumber(ARGV[10]), tonumber(ARGV[11])
local first_coupon = 13 + 3 * n_res
local first_field = first_coupon + 3 * n_coupons
local records = {}
for i = 13, first_coupon - 1, 3 do
  local rid, hash = ARGV[i], KEYS[tonumber(ARGV[i + 1])]
  local raw = redis.call('HGET', hash, rid)
  if not raw then
    return {'err', 'reservation_not_found', rid}
  end
  local record = cjson.decode(raw)
  if record['u'] ~= user then
    return {'err', 'reservation_not_yours', rid}
  elseif record['s'] ~= 'held' then
    return {'err', 'reservation_not_held', rid .. ' ' .. record['s']}
  elseif record['e'] <= now then
    return {'err', 'reservation_expired', rid}
  elseif record['o'] then
    return {'err', 'reservation_in_order', rid .. ' ' .. record['o']}
  elseif record['q'] ~= tonumber(ARGV[i + 2]) then
    return {'err', 'reservation_changed', rid}
  end
  records[#records + 1] = {rid, hash, record}
end
local coupons = {}
for i = first_coupon, first_field - 1, 3 do
  local cid = ARGV[i]
  local raw = redis.call('HGET', KEYS[8], cid)
  if not raw then
    return {'err', 'coupon_not_found', cid}
  end
  local record = cjson.decode(raw)
  if record['u'] ~= user then
    return {'err', 'coupon_not_yours', cid}
  elseif record['s'] ~= 'claimed' then
    return {'err', 'coupon_not_available', cid .. ' ' .. record['s']}
  elseif now < tonumber(ARGV[i + 1]) or now >= tonumber(ARGV[i + 2]) then
    return {'err', 'coupon_not_valid', cid}
  end
  coupons[#coupons + 1] = {cid, record}
end
-- Everything checks out: write.
local deadline = now + tonumber(ARGV[7])
for _, item in ipairs(records) do
  -- A group-buy unit carries its team's deadline (`d`): the payment window ends there too.
  if item[3]['d'] and item[3]['d'] < deadline then
    deadline = item[3]['d']
  end
end
for _, item in ipairs(records) do
  local rid, hash, record = item[1], item[2], item[3]
  record['o'] = order_id
  record['e'] = deadline
  redis.call('HSET', hash, rid, cjson.encode(record))
  redis.call('ZADD', KEYS[9], deadline, rid)
end
for _, item in ipairs(coupons) do
  item[2]['s'] = 'locked'
  item[2]['o'] = order_id
  redis.call('HSET', KEYS[8], item[1], cjson.encode(item[2]))
end
redis.call('HSET', KEYS[1], 'id', order_id, 'user', user, 'device', device, 'key', key,
  'state', 'pending_payment', 'created_at', now, 'expires_at', deadline, 'refunded', 0,
  unpack(ARGV, first_field))
redis.call('ZADD', KEYS[2], tonumber(string.sub(order_id, 2)), order_id)
redis.call('HSET', KEYS[3], user .. ' ' .. key, order_id)
redis.call('ZADD', KEYS[4], deadline, order_id)
redis.call('HINCRBY', KEYS[5], 'u:' .. user, 1)
if device ~= '' then
  redis.call('HINCRBY', KEYS[5], 'd:' .. device, 1)
end
local mine = redis.call('HGET', KEYS[6], user)
redis.call('HSET', KEYS[6], user, mine and (mine .. ' ' .. order_id) or order_id)
redis.call('XADD', KEYS[10], 'MAXLEN', '~', ARGV[2], '*', 'type', 'order_created',
  'order', order_id, 'user', user, 'state', 'pending_payment',
  'total', redis.call('HGET', KEYS[1], 'total'), 'at', now)
if ARGV[12] == '1' then
  -- The order counts once in `orders`, and once in the total of each sale it buys from.
  count_metric(KEYS[11], 'orders', 1)
  local counted = {}
  for _, item in ipairs(records) do
    local sale = string.match(item[1], '^(s%d+)%.')
    if not counted[sale] then
      counted[sale] = true
      redis.call('HINCRBY', KEYS[11], 't:orders.' .. sale, 1)
    end
  end
end
return {'ok', order_id}
