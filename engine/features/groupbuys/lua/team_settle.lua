-- Decide a group-buy team exactly once: completed when K members' orders were paid before
-- its deadline (their `paid_at`, set by order_pay.lua on Redis time, is < the deadline),
-- failed when the deadline has passed first. Before the deadline with fewer than K paid it
-- stays open. The caller read which order holds each member's unit; if any of that changed
-- meanwhile the script answers "stale" and the caller reads again. A failed team stays in
-- the due set (scored now) until the caller has unwound its members.
-- KEYS[1] - the team hash
-- KEYS[2] - room group-buy due set
-- KEYS[3] - room log stream
-- KEYS[4] - the deal's private sale reservations hash
-- KEYS[5..n] - the order hashes named in ARGV (may be none)
-- ARGV[1] - now in ms, or "" for Redis server time
-- ARGV[2] - approximate MAXLEN of the room log
-- ARGV[3] - bus channel
-- ARGV[4] - the deal id
-- ARGV[5..n] - per member in join order: reservation id, order id or "", index into KEYS of
--   that order's hash or 0
-- returns {"flipped" | "settled" | "open", state, paid members} | {"stale"} | {"err", "team_not_found"}
local clock_arg = ARGV[1]
--!include _now
local team = redis.call('HMGET', KEYS[1], 'id', 'state', 'deadline', 'size', 'members')
if not team[1] then
  return {'err', 'team_not_found'}
end
local state, deadline, size, members = team[2], tonumber(team[3]), tonumber(team[4]),
  tonumber(team[5])
if state == 'completed' or state == 'failed' then
  return {'settled', state, redis.call('HGET', KEYS[1], 'paid') or '0'}
end
if (#ARGV - 4) / 3 ~= members then
  return {'stale'}
end
local paid = 0
for n = 1, members do
  local i = 5 + 3 * (n - 1)
  local member = cjson.decode(redis.call('HGET', KEYS[1], 'member:' .. n))
  local raw = redis.call('HGET', KEYS[4], ARGV[i])
  local record = raw and cjson.decode(raw)
  if member['r'] ~= ARGV[i] or not record or (record['o'] or '') ~= ARGV[i + 1] then
    return {'stale'}
  end
  local k = tonumber(ARGV[i + 2])
  if k > 0 then
    local paid_at = redis.call('HGET', KEYS[k], 'paid_at')
    if paid_at and tonumber(paid_at) < deadline then
      paid = paid + 1
    end
  end
end
if paid < size and now < deadline then
  return {'open', state, tostring(paid)}
end
local new_state = paid >= size and 'completed' or 'failed'
redis.call('HSET', KEYS[1], 'state', new_state, 'settled_at', now, 'paid', paid)
local ref = ARGV[4] .. '.' .. team[1]
if new_state == 'completed' then
  redis.call('ZREM', KEYS[2], ref)
else
  redis.call('ZADD', KEYS[2], now, ref)
end
local kind = 'team_' .. new_state
local data = cjson.encode({groupbuy = ARGV[4], team = team[1], members = members, size = size,
  paid = paid, deadline = deadline, state = new_state, settled_at = now})
local entry = redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[2], '*', 'k', kind, 'r', ref,
  'd', data)
redis.call(PUBLISH, ARGV[3], kind .. '\n' .. entry .. '\n' .. ref .. '\n' .. data)
return {'flipped', new_state, tostring(paid)}
