-- End an unpaid order: cancelled (by its buyer or the host) or expired (its payment deadline
-- passed; the sweeper). Its coupons go back to claimed and its reservations leave the order
-- with their hold ending now, so the caller (or, if it dies, the reservation sweeper) returns
-- the units to stock through the "release only if still held" script.
-- KEYS[1] - the order hash
-- KEYS[2] - room order expiry sorted set
-- KEYS[3] - room order counts hash
-- KEYS[4] - room coupons hash
-- KEYS[5] - room reservation expiry sorted set
-- KEYS[6] - room order events stream
-- KEYS[7..n] - the reservations hashes of the sales involved
-- ARGV[1] - now in ms, or "" for Redis server time
-- ARGV[2] - approximate MAXLEN of the order events stream
-- ARGV[3] - "cancel" | "expire"
-- ARGV[4] - who (user id, or "sweeper")
-- ARGV[5] - reason
-- ARGV[6..n] - per line: reservation id, index into KEYS of its reservations hash
-- returns {"ok", state, reservation ids still held...} | {"err", code, detail}
local clock_arg = ARGV[1]
--!include _now
local order = redis.call('HMGET', KEYS[1], 'id', 'state', 'user', 'device', 'coupons', 'expires_at')
if not order[1] then
  return {'err', 'order_not_found', ''}
end
local order_id, state = order[1], order[2]
if state ~= 'pending_payment' then
  return {'err', 'illegal_transition', state}
end
local mode = ARGV[3]
if mode == 'expire' and tonumber(order[6]) > now then
  return {'err', 'not_due', order[6]}
end
local new_state = mode == 'cancel' and 'cancelled' or 'expired'
redis.call('HSET', KEYS[1], 'state', new_state, 'closed_at', now, 'closed_by', ARGV[4],
  'reason', ARGV[5])
redis.call('ZREM', KEYS[2], order_id)
redis.call('HINCRBY', KEYS[3], 'u:' .. order[3], -1)
if order[4] and order[4] ~= '' then
  redis.call('HINCRBY', KEYS[3], 'd:' .. order[4], -1)
end
for cid in string.gmatch(order[5] or '', '%S+') do
  local c = cjson.decode(redis.call('HGET', KEYS[4], cid))
  if c['s'] == 'locked' and c['o'] == order_id then
    c['s'] = 'claimed'
    c['o'] = nil
    redis.call('HSET', KEYS[4], cid, cjson.encode(c))
  end
end
local held = {}
for i = 6, #ARGV, 2 do
  local rid, hash = ARGV[i], KEYS[tonumber(ARGV[i + 1])]
  local raw = redis.call('HGET', hash, rid)
  local r = raw and cjson.decode(raw)
  if r and r['s'] == 'held' and r['o'] == order_id then
    r['o'] = nil
    if r['e'] > now then
      r['e'] = now
    end
    redis.call('HSET', hash, rid, cjson.encode(r))
    redis.call('ZADD', KEYS[5], r['e'], rid)
    held[#held + 1] = rid
  end
end
redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[2], '*', 'type', 'order_' .. new_state,
  'order', order_id, 'user', order[3], 'by', ARGV[4], 'reason', ARGV[5], 'at', now)
return {'ok', new_state, unpack(held)}
