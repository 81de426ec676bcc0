-- Start a group-buy team or join one, atomically: the team is forming, its deadline has not
-- passed, it has fewer than K members, the user is not in it and is within the deal's
-- per-user limit, and the deal's private sale has a unit. Then the user becomes a member
-- and gets that unit reserved at the group price until the team's deadline, in a record
-- like award.lua's plus `d` (the deadline: checkout never lets the order outlive it). The
-- K-th member makes the team full. Logs `team_started` / `team_joined` for the room.
-- KEYS[1] - the deal hash
-- KEYS[2] - the team hash (new when starting)
-- KEYS[3] - the deal's teams index (sorted set)
-- KEYS[4] - room group-buy due set (sorted set: "<deal>.<team>" -> ms)
-- KEYS[5] - the private sale hash
-- KEYS[6] - the sale's reservations hash
-- KEYS[7] - the sale's per-user units hash
-- KEYS[8] - room reservation expiry sorted set
-- KEYS[9] - room outbox stream
-- KEYS[10] - room log stream
-- ARGV[1] - now in ms, or "" for Redis server time
-- ARGV[2] - approximate MAXLEN of the room log
-- ARGV[3] - approximate MAXLEN of the outbox
-- ARGV[4] - bus channel
-- ARGV[5] - "start" | "join"
-- ARGV[6] - team id
-- ARGV[7] - user
-- ARGV[8] - display name
-- returns {"ok", state, members, deadline, reservation}
--   | {"err", "groupbuy_not_found" | "team_not_found" | "team_exists" | "team_full"
--      | "team_closed" | "already_in_team" | "groupbuy_limit" | "groupbuy_sold_out"}
local clock_arg = ARGV[1]
--!include _now
local deal = redis.call('HMGET', KEYS[1], 'id', 'size', 'window_ms', 'price', 'per_user_limit',
  'sale')
if not deal[1] then
  return {'err', 'groupbuy_not_found'}
end
local mode, team_id, user = ARGV[5], ARGV[6], ARGV[7]
local size = tonumber(deal[2])
local deadline
if mode == 'start' then
  if redis.call('EXISTS', KEYS[2]) == 1 then
    return {'err', 'team_exists'}
  end
  deadline = now + tonumber(deal[3])
else
  local team = redis.call('HMGET', KEYS[2], 'state', 'deadline', 'members')
  if not team[1] then
    return {'err', 'team_not_found'}
  end
  deadline = tonumber(team[2])
  if redis.call('HEXISTS', KEYS[2], 'user:' .. user) == 1 then
    return {'err', 'already_in_team'}
  end
  if team[1] == 'full' then
    return {'err', 'team_full'}
  end
  if team[1] ~= 'forming' or now >= deadline then
    return {'err', 'team_closed'}
  end
end
if tonumber(redis.call('HGET', KEYS[7], user) or '0') >= tonumber(deal[5]) then
  return {'err', 'groupbuy_limit'}
end
local sale = redis.call('HMGET', KEYS[5], 'id', 'available', 'res_seq')
local available, seq = tonumber(sale[2]), tonumber(sale[3]) + 1
if available < 1 then
  return {'err', 'groupbuy_sold_out'}
end
local price = tonumber(deal[4])
local reservation = sale[1] .. '.' .. seq
redis.call('HINCRBY', KEYS[7], user, 1)
redis.call('HSET', KEYS[6], reservation, cjson.encode({u = user, q = 1, s = 'held', e = deadline,
  c = now, p = price, d = deadline}))
redis.call('ZADD', KEYS[8], deadline, reservation)
redis.call('HSET', KEYS[5], 'available', available - 1, 'res_seq', seq)
redis.call('HINCRBY', KEYS[5], 'reserved', 1)
redis.call('XADD', KEYS[9], 'MAXLEN', '~', ARGV[3], '*', 'type', 'reserved', 'sale', sale[1],
  'reservation', reservation, 'user', user, 'units', 1, 'at', now)
if mode == 'start' then
  redis.call('HSET', KEYS[2], 'id', team_id, 'deal', deal[1], 'state', 'forming', 'leader', user,
    'leader_name', ARGV[8], 'created_at', now, 'deadline', deadline, 'size', size, 'members', 0)
  redis.call('ZADD', KEYS[3], tonumber(string.sub(team_id, 2)), team_id)
  redis.call('ZADD', KEYS[4], deadline, deal[1] .. '.' .. team_id)
end
local n = redis.call('HINCRBY', KEYS[2], 'members', 1)
redis.call('HSET', KEYS[2], 'member:' .. n, cjson.encode({u = user, name = ARGV[8],
  r = reservation, at = now}), 'user:' .. user, n)
redis.call('HSET', KEYS[1], 'r:' .. reservation, team_id)
local state = 'forming'
if n == size then
  state = 'full'
  redis.call('HSET', KEYS[2], 'state', state)
end
local kind = mode == 'start' and 'team_started' or 'team_joined'
local data = cjson.encode({groupbuy = deal[1], team = team_id, user = user, name = ARGV[8],
  members = n, size = size, needed = size - n, deadline = deadline, price = price,
  state = state, server_time = now})
local ref = deal[1] .. '.' .. team_id
local entry = redis.call('XADD', KEYS[10], 'MAXLEN', '~', ARGV[2], '*', 'k', kind, 'r', ref,
  'd', data)
redis.call(PUBLISH, ARGV[4], kind .. '\n' .. entry .. '\n' .. ref .. '\n' .. data)
return {'ok', state, n, deadline, reservation}
