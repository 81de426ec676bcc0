-- Close an auction exactly once: when its clock (the server's, moved by anti-sniping) has
-- run out, or at once when the host ends it. The leader, if any, wins at the current price.
-- KEYS[1] - the auction hash
-- KEYS[2] - room open auctions (sorted set: auction id -> ends_at ms)
-- KEYS[3] - room log stream
-- ARGV[1] - now in ms, or "" for Redis server time
-- ARGV[2] - approximate MAXLEN of the room log
-- ARGV[3] - bus channel
-- ARGV[4] - "1" to end it now (the host), "" to close only if due
-- returns {"ok", winner or "", price, closed_at} | {"err", "auction_not_found" | "auction_closed" | "not_due"}
local a = redis.call('HMGET', KEYS[1], 'id', 'state', 'ends_at', 'leader', 'price', 'leader_name',
  'bids')
if not a[1] then
  return {'err', 'auction_not_found'}
end
if a[2] ~= 'open' then
  return {'err', 'auction_closed'}
end
local clock_arg = ARGV[1]
--!include _now
if ARGV[4] ~= '1' and now < tonumber(a[3]) then
  return {'err', 'not_due'}
end
redis.call('HSET', KEYS[1], 'state', 'closed', 'closed_at', now, 'winner', a[4],
  'winner_name', a[6])
redis.call('ZREM', KEYS[2], a[1])
local data = cjson.encode({auction = a[1], winner = a[4], winner_name = a[6],
  price = tonumber(a[5]), bids = tonumber(a[7]), closed_at = now})
local entry = redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[2], '*', 'k', 'auction_closed', 'r', a[1], 'd', data)
redis.call(PUBLISH, ARGV[3], 'auction_closed\n' .. entry .. '\n' .. a[1] .. '\n' .. data)
return {'ok', a[4], a[5], now}
