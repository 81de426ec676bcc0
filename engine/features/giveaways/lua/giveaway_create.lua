-- Open a giveaway: store its terms, its secret seed and the seed's commitment, index a
-- keyword giveaway's keyword for comment entries, and log `giveaway_opened` (terms and
-- commitment, never the seed) for viewers.
-- KEYS[1] - the giveaway hash (new)
-- KEYS[2] - room giveaways index (sorted set: giveaway id -> its number)
-- KEYS[3] - room log stream
-- KEYS[4] - room open keyword giveaways hash (giveaway id -> normalized keyword)
-- ARGV[1] - giveaway id
-- ARGV[2] - now in ms, or "" for Redis server time
-- ARGV[3] - duration ms
-- ARGV[4] - approximate MAXLEN of the room log
-- ARGV[5] - bus channel
-- ARGV[6] - announcement data, a JSON object (giveaway, title, prize, winners, rule, commitment)
-- ARGV[7] - the normalized keyword, or "" when the rule is not `keyword`
-- ARGV[8..n] - field, value pairs stored with the giveaway (title, prize, winners, rule, keyword, seed, commitment, limits, prize terms)
-- returns {created_at, ends_at} | {"err", "giveaway_exists"}
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {'err', 'giveaway_exists'}
end
local clock_arg = ARGV[2]
--!include _now
local ends = now + tonumber(ARGV[3])
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'state', 'open', 'created_at', now, 'ends_at', ends,
  unpack(ARGV, 8))
redis.call('ZADD', KEYS[2], tonumber(string.sub(ARGV[1], 2)), ARGV[1])
if ARGV[7] ~= '' then
  redis.call('HSET', KEYS[4], ARGV[1], ARGV[7])
end
local announcement = cjson.decode(ARGV[6])
announcement['created_at'] = now
announcement['ends_at'] = ends
announcement['server_time'] = now
local data = cjson.encode(announcement)
local entry = redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], '*', 'k', 'giveaway_opened', 'r', ARGV[1], 'd', data)
redis.call(PUBLISH, ARGV[5], 'giveaway_opened\n' .. entry .. '\n' .. ARGV[1] .. '\n' .. data)
return {now, ends}
