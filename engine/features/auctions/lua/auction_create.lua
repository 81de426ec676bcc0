-- Open an auction of one lot (a private sale's unit): store its terms, index it among the
-- room's auctions and the open ones (by end time), and log `auction_opened` for viewers.
-- KEYS[1] - the auction hash (new)
-- KEYS[2] - room auctions index (sorted set: auction id -> its number)
-- KEYS[3] - room open auctions (sorted set: auction id -> ends_at ms)
-- KEYS[4] - room log stream
-- ARGV[1] - auction id
-- ARGV[2] - now in ms, or "" for Redis server time
-- ARGV[3] - duration ms
-- ARGV[4] - approximate MAXLEN of the room log
-- ARGV[5] - bus channel
-- ARGV[6] - announcement data, a JSON object (the auction's public terms)
-- ARGV[7..n] - field, value pairs stored with the auction (sku, product, title, currency, start_price, increments, mode, extend_ms, sale)
-- returns {created_at, ends_at} | {"err", "auction_exists"}
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {'err', 'auction_exists'}
end
local clock_arg = ARGV[2]
--!include _now
local ends = now + tonumber(ARGV[3])
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'state', 'open', 'created_at', now, 'ends_at', ends,
  'leader', '', 'leader_name', '', 'leader_max', 0, 'bids', 0, 'offers', 0, unpack(ARGV, 7))
redis.call('HSET', KEYS[1], 'price', redis.call('HGET', KEYS[1], 'start_price'))
redis.call('ZADD', KEYS[2], tonumber(string.sub(ARGV[1], 2)), ARGV[1])
redis.call('ZADD', KEYS[3], ends, ARGV[1])
local announcement = cjson.decode(ARGV[6])
announcement['created_at'] = now
announcement['ends_at'] = ends
announcement['server_time'] = now
local data = cjson.encode(announcement)
local entry = redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[4], '*', 'k', 'auction_opened', 'r', ARGV[1], 'd', data)
redis.call(PUBLISH, ARGV[5], 'auction_opened\n' .. entry .. '\n' .. ARGV[1] .. '\n' .. data)
return {now, ends}
