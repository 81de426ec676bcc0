-- Return reservations to stock: a viewer releasing their own, or the sweeper expiring holds
-- whose time is up. Only a reservation that is still held is touched, so expiry racing
-- checkout, a second sweeper or a double release can never return a unit twice. Units
-- that come back go first to the sale's waitlist.
-- KEYS[1] - the sale hash
-- KEYS[2] - the sale's reservations hash
-- KEYS[3] - the sale's per-user units hash
-- KEYS[4] - room expiry sorted set
-- KEYS[5] - room outbox stream
-- KEYS[6] - the sale's waitlist (list of users in arrival order)
-- KEYS[7] - the sale's waitlist members (set)
-- ARGV[1] - now in ms, or "" for Redis server time
-- ARGV[2] - approximate MAXLEN of the outbox
-- ARGV[3] - bus channel (notices to the users concerned)
-- ARGV[4] - "release" (by its owner, ARGV[5]) or "expire" (only holds whose time is up)
-- ARGV[5] - the owner, for "release"
-- ARGV[6..n] - reservation ids
-- returns one string per reservation id: "released" | "expired" | "not_found" | "not_yours"
--   | "in_order" (release only: checked out; cancel the order) | "not_expired"
--   | "not_held:<state>"
local clock_arg = ARGV[1]
--!include _now
--!include _waitlist
local mode, owner = ARGV[4], ARGV[5]
local results = {}
local returned = 0
for i = 6, #ARGV do
  local reservation = ARGV[i]
  local raw = redis.call('HGET', KEYS[2], reservation)
  local record = raw and cjson.decode(raw)
  if not record then
    results[#results + 1] = 'not_found'
    redis.call('ZREM', KEYS[4], reservation)
  elseif record['s'] ~= 'held' then
    results[#results + 1] = 'not_held:' .. record['s']
  elseif mode == 'release' and record['u'] ~= owner then
    results[#results + 1] = 'not_yours'
  elseif mode == 'release' and record['o'] then
    results[#results + 1] = 'in_order'
  elseif mode == 'expire' and record['e'] > now then
    results[#results + 1] = 'not_expired'
  else
    local state = mode == 'release' and 'released' or 'expired'
    record['s'] = state
    record['x'] = now
    redis.call('HSET', KEYS[2], reservation, cjson.encode(record))
    redis.call('ZREM', KEYS[4], reservation)
    redis.call('HINCRBY', KEYS[3], record['u'], -record['q'])
    redis.call('HINCRBY', KEYS[1], 'reserved', -record['q'])
    redis.call('HINCRBY', KEYS[1], 'available', record['q'])
    returned = returned + record['q']
    local sale = redis.call('HGET', KEYS[1], 'id')
    redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[2], '*', 'type', state, 'sale', sale,
      'reservation', reservation, 'user', record['u'], 'units', record['q'], 'at', now)
    if state == 'expired' then
      redis.call(PUBLISH, ARGV[3], 'reservation_expired\n\n\n{"user":"' .. record['u'] ..
        '","sale":"' .. sale .. '","reservation":"' .. reservation .. '"}')
    end
    results[#results + 1] = state
  end
end
if returned > 0 then
  serve_waitlist(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], now, ARGV[2], ARGV[3])
end
return results
