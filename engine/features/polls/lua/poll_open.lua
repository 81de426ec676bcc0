-- Open a live poll: store it with a zero count per option, index it as open (by its end)
-- and among the room's polls, and log `poll_opened` with the poll for viewers.
-- KEYS[1] - the poll hash (new)
-- KEYS[2] - room open polls (sorted set: poll id -> ends_at ms)
-- KEYS[3] - room polls, newest first (list of poll ids)
-- KEYS[4] - room log stream
-- ARGV[1] - poll id
-- ARGV[2] - now in ms, or "" for Redis server time
-- ARGV[3] - duration ms
-- ARGV[4] - approximate MAXLEN of the room log
-- ARGV[5] - bus channel
-- ARGV[6] - question
-- ARGV[7] - options, a JSON array of strings
-- ARGV[8] - "1" if a vote may be changed until the poll closes, else "0"
-- returns {opened_at, ends_at} | {"err", "poll_exists"}
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {'err', 'poll_exists'}
end
local clock_arg = ARGV[2]
--!include _now
local ends = now + tonumber(ARGV[3])
local options = cjson.decode(ARGV[7])
local counts = {}
for i = 1, #options do
  counts[#counts + 1] = 'c' .. (i - 1)
  counts[#counts + 1] = 0
end
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'question', ARGV[6], 'options', ARGV[7],
  'state', 'open', 'opened_at', now, 'ends_at', ends, 'changeable', ARGV[8], 'total', 0,
  unpack(counts))
redis.call('ZADD', KEYS[2], ends, ARGV[1])
redis.call('LPUSH', KEYS[3], ARGV[1])
local zeros = {}
for i = 1, #options do
  zeros[i] = 0
end
local poll = {id = ARGV[1], question = ARGV[6], options = options, state = 'open',
  opened_at = now, ends_at = ends, closed_at = cjson.null, changeable = ARGV[8] == '1',
  votes = zeros, total = 0}
local data = cjson.encode(poll)
local entry = redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[4], '*', 'k', 'poll_opened',
  'r', ARGV[1], 'd', data)
redis.call(PUBLISH, ARGV[5], 'poll_opened\n' .. entry .. '\n' .. ARGV[1] .. '\n' .. data)
return {now, ends}
