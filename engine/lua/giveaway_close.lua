-- Close a giveaway exactly once: flip open -> closed, store the draw computed by the caller
-- from the entrants it read, and log `giveaway_closed` (winners and the revealed seed).
-- Refuses when already closed, or when the entrants changed since the caller read them.
-- KEYS[1] - the giveaway hash
-- KEYS[2] - the giveaway's entrants set
-- KEYS[3] - room log stream
-- ARGV[1] - now in ms, or "" for Redis server time
-- ARGV[2] - approximate MAXLEN of the room log
-- ARGV[3] - bus channel
-- ARGV[4] - entrants the draw was computed from (their count)
-- ARGV[5] - the sorted entrants, a JSON array
-- ARGV[6] - the winners, a JSON array (draw order)
-- returns {"ok", closed_at} | {"err", "giveaway_not_found" | "giveaway_closed" | "entrants_changed"}
local state = redis.call('HGET', KEYS[1], 'state')
if not state then
  return {'err', 'giveaway_not_found'}
end
if state ~= 'open' then
  return {'err', 'giveaway_closed'}
end
if redis.call('SCARD', KEYS[2]) ~= tonumber(ARGV[4]) then
  return {'err', 'entrants_changed'}
end
local clock_arg = ARGV[1]
--!include _now
redis.call('HSET', KEYS[1], 'state', 'closed', 'closed_at', now, 'entrants', ARGV[5],
  'entrants_count', ARGV[4], 'winners_list', ARGV[6])
local g = redis.call('HMGET', KEYS[1], 'id', 'title', 'prize', 'seed', 'commitment')
local data = cjson.encode({giveaway = g[1], title = g[2], prize = g[3], seed = g[4],
  commitment = g[5], entrants = tonumber(ARGV[4]), closed_at = now})
-- spliced in as given: cjson would encode an empty winners list as an object
data = string.sub(data, 1, -2) .. ',"winners":' .. ARGV[6] .. '}'
local entry = redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[2], '*', 'k', 'giveaway_closed', 'r', g[1], 'd', data)
redis.call('PUBLISH', ARGV[3], 'giveaway_closed\n' .. entry .. '\n' .. g[1] .. '\n' .. data)
return {'ok', now}
