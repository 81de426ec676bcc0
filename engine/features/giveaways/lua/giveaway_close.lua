-- Close a giveaway exactly once: flip open -> closed, store the draw computed by the caller
-- from the entrants and the room's past winners it read, record this giveaway's winners
-- for later limits, and log `giveaway_closed` (winners, their names, the revealed seed).
-- Refuses when already closed, or when the entrants or the room's closed giveaways changed
-- since the caller read them (the caller draws again).
-- KEYS[1] - the giveaway hash
-- KEYS[2] - the giveaway's entrants hash
-- KEYS[3] - room log stream
-- KEYS[4] - room closed giveaways list (ids in closing order)
-- KEYS[5] - room winners hash (user -> space-separated ids of giveaways won)
-- KEYS[6] - room open keyword giveaways hash
-- ARGV[1] - now in ms, or "" for Redis server time
-- ARGV[2] - approximate MAXLEN of the room log
-- ARGV[3] - bus channel
-- ARGV[4] - entrants the draw was computed from (their count)
-- ARGV[5] - closed giveaways the exclusions were computed from (their count)
-- ARGV[6] - the sorted entrants, a JSON array
-- ARGV[7] - the sorted entrants excluded by the limits, a JSON array
-- ARGV[8] - the winners, a JSON array (draw order)
-- ARGV[9] - the winners' display names, a JSON object (user -> name)
-- returns {"ok", closed_at} | {"err", "giveaway_not_found" | "giveaway_closed" | "entrants_changed"}
local state = redis.call('HGET', KEYS[1], 'state')
if not state then
  return {'err', 'giveaway_not_found'}
end
if state ~= 'open' then
  return {'err', 'giveaway_closed'}
end
if redis.call('HLEN', KEYS[2]) ~= tonumber(ARGV[4])
    or redis.call('LLEN', KEYS[4]) ~= tonumber(ARGV[5]) then
  return {'err', 'entrants_changed'}
end
local clock_arg = ARGV[1]
--!include _now
local g = redis.call('HMGET', KEYS[1], 'id', 'title', 'prize', 'seed', 'commitment')
redis.call('HSET', KEYS[1], 'state', 'closed', 'closed_at', now, 'entrants', ARGV[6],
  'entrants_count', ARGV[4], 'excluded', ARGV[7], 'winners_list', ARGV[8], 'names', ARGV[9])
redis.call('RPUSH', KEYS[4], g[1])
redis.call('HDEL', KEYS[6], g[1])
for _, user in ipairs(cjson.decode(ARGV[8])) do
  local won = redis.call('HGET', KEYS[5], user)
  redis.call('HSET', KEYS[5], user, won and (won .. ' ' .. g[1]) or g[1])
end
local data = cjson.encode({giveaway = g[1], title = g[2], prize = g[3], seed = g[4],
  commitment = g[5], entrants = tonumber(ARGV[4]), excluded = #cjson.decode(ARGV[7]),
  closed_at = now})
-- spliced in as given: cjson would encode an empty list as an object and vice versa
data = string.sub(data, 1, -2) .. ',"winners":' .. ARGV[8] .. ',"names":' .. ARGV[9] .. '}'
local entry = redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[2], '*', 'k', 'giveaway_closed', 'r', g[1], 'd', data)
redis.call(PUBLISH, ARGV[3], 'giveaway_closed\n' .. entry .. '\n' .. g[1] .. '\n' .. data)
return {'ok', now}
