-- One viewer's vote in an open poll, atomically: one vote per user; a changeable poll moves
-- a changed vote from its old option to the new one. Counts and voters always agree.
-- KEYS[1] - the poll hash
-- KEYS[2] - the poll's voters hash (user -> option index)
-- ARGV[1] - now in ms, or "" for Redis server time
-- ARGV[2] - user id
-- ARGV[3] - option index (0-based)
-- returns {"ok", 1 if a vote changed else 0} | {"err", "poll_not_found" | "poll_closed" |
--   "already_voted" | "invalid_option"}
local poll = redis.call('HMGET', KEYS[1], 'state', 'ends_at', 'changeable', 'c' .. ARGV[3])
if not poll[1] then
  return {'err', 'poll_not_found'}
end
local clock_arg = ARGV[1]
--!include _now
if poll[1] ~= 'open' or now >= tonumber(poll[2]) then
  return {'err', 'poll_closed'}
end
if not poll[4] then
  return {'err', 'invalid_option'}
end
local previous = redis.call('HGET', KEYS[2], ARGV[2])
if previous == ARGV[3] then
  return {'ok', 0}
end
if previous then
  if poll[3] ~= '1' then
    return {'err', 'already_voted'}
  end
  redis.call('HINCRBY', KEYS[1], 'c' .. previous, -1)
else
  redis.call('HINCRBY', KEYS[1], 'total', 1)
end
redis.call('HINCRBY', KEYS[1], 'c' .. ARGV[3], 1)
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
if previous then
  return {'ok', 1}
end
return {'ok', 0}
