-- Close a poll once (the host, or the sweeper at its end): its final counts are logged as
-- `poll_closed` for viewers and the report. Closing a closed poll changes nothing.
-- KEYS[1] - the poll hash
-- KEYS[2] - room open polls (sorted set)
-- KEYS[3] - room log stream
-- ARGV[1] - poll id
-- ARGV[2] - now in ms, or "" for Redis server time
-- ARGV[3] - approximate MAXLEN of the room log
-- ARGV[4] - bus channel
-- ARGV[5] - "due" to close only a poll whose end has passed (the sweeper), else ""
-- returns {"ok", closed_at} | {"err", "poll_not_found" | "poll_closed" | "not_due"}
local poll = redis.call('HGETALL', KEYS[1])
if #poll == 0 then
  return {'err', 'poll_not_found'}
end
local fields = {}
for i = 1, #poll, 2 do
  fields[poll[i]] = poll[i + 1]
end
if fields['state'] ~= 'open' then
  return {'err', 'poll_closed'}
end
local clock_arg = ARGV[2]
--!include _now
if ARGV[5] == 'due' and now < tonumber(fields['ends_at']) then
  return {'err', 'not_due'}
end
local closed = math.min(now, tonumber(fields['ends_at']))
redis.call('HSET', KEYS[1], 'state', 'closed', 'closed_at', closed)
redis.call('ZREM', KEYS[2], ARGV[1])
local options = cjson.decode(fields['options'])
local votes = {}
for i = 1, #options do
  votes[i] = tonumber(fields['c' .. (i - 1)])
end
local data = cjson.encode({id = ARGV[1], question = fields['question'], options = options,
  state = 'closed', opened_at = tonumber(fields['opened_at']),
  ends_at = tonumber(fields['ends_at']), closed_at = closed,
  changeable = fields['changeable'] == '1', votes = votes, total = tonumber(fields['total'])})
local entry = redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', 'k', 'poll_closed',
  'r', ARGV[1], 'd', data)
redis.call(PUBLISH, ARGV[4], 'poll_closed\n' .. entry .. '\n' .. ARGV[1] .. '\n' .. data)
return {'ok', closed}
