-- include: serve_waitlist(sale_key, reservations, users, expiry, outbox, waitlist, members,
--   now, outbox_maxlen, channel) hands units that came back to stock to the sale's waitlist,
--   one unit per waiting user in arrival order, as new reservations (users already at
--   their limit are skipped). Returns how many units it handed out.
local function serve_waitlist(sale_key, reservations, users, expiry, outbox, waitlist, members,
                              now, outbox_maxlen, channel)
  local sale = redis.call('HMGET', sale_key, 'id', 'ends_at', 'available', 'limit', 'hold_ms',
    'price', 'currency', 'res_seq')
  local id, ends, available = sale[1], tonumber(sale[2]), tonumber(sale[3])
  local limit, hold, seq = tonumber(sale[4]), tonumber(sale[5]), tonumber(sale[8])
  if now >= ends then
    return 0
  end
  local served = 0
  while available > 0 do
    local user = redis.call('LPOP', waitlist)
    if not user then
      break
    end
    redis.call('SREM', members, user)
    local holding = tonumber(redis.call('HGET', users, user) or '0')
    if holding + 1 <= limit then
      available = available - 1
      served = served + 1
      seq = seq + 1
      local reservation = id .. '.' .. seq
      local expires = now + hold
      redis.call('HSET', users, user, holding + 1)
      redis.call('HSET', reservations, reservation, '{"u":"' .. user .. '","q":1,"s":"held","e":' ..
        expires .. ',"c":' .. now .. ',"w":1}')
      redis.call('ZADD', expiry, expires, reservation)
      redis.call('XADD', outbox, 'MAXLEN', '~', outbox_maxlen, '*', 'type', 'reserved', 'sale', id,
        'reservation', reservation, 'user', user, 'units', 1, 'at', now, 'via', 'waitlist')
      redis.call(PUBLISH, channel, 'reservation_offered\n\n\n{"user":"' .. user ..
        '","sale":"' .. id .. '","reservation":"' .. reservation .. '","quantity":1,"expires_at":' ..
        expires .. ',"price":' .. sale[6] .. ',"currency":"' .. sale[7] .. '"}')
    end
  end
  if served > 0 then
    redis.call('HSET', sale_key, 'available', available, 'res_seq', seq)
    redis.call('HINCRBY', sale_key, 'reserved', served)
  end
  return served
end
