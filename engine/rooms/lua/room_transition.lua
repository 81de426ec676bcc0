-- Move a room to a new state if its current state allows it; log and publish the change.
-- KEYS[1] - room meta hash
-- KEYS[2] - room log stream
-- ARGV[1] - new state
-- ARGV[2] - states allowed to move to ARGV[1], space separated
-- ARGV[3] - meta field that records when (e.g. "live_at")
-- ARGV[4] - approximate MAXLEN of the log
-- ARGV[5] - bus channel
-- returns {"ok", entry_id, previous_state} | {"err", code, current_state}
local current = redis.call('HGET', KEYS[1], 'state')
if not current then
  return {'err', 'room_not_found', ''}
end
local allowed = false
for state in string.gmatch(ARGV[2], '%S+') do
  if state == current then
    allowed = true
  end
end
if not allowed then
  return {'err', 'illegal_transition', current}
end
local t = redis.call('TIME')
redis.call('HSET', KEYS[1], 'state', ARGV[1], ARGV[3], t[1] * 1000 + math.floor(t[2] / 1000))
local data = cjson.encode({state = ARGV[1], previous = current})
local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'k', 'room_state', 'r', '', 'd', data)
redis.call(PUBLISH, ARGV[5], 'room_state\n' .. id .. '\n\n' .. data)
return {'ok', id, current}
