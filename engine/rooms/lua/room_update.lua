-- Update a room's fields and settings, and log a `room_updated` entry with the new values.
-- KEYS[1] - room meta hash
-- KEYS[2] - room log stream
-- ARGV[1] - event data, a JSON object of the public fields that changed
-- ARGV[2] - approximate MAXLEN of the log
-- ARGV[3] - bus channel
-- ARGV[4..n] - field, value pairs to store
-- returns {"ok", entry_id} | {"err", code}
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'err', 'room_not_found'}
end
if #ARGV > 3 then
  redis.call('HSET', KEYS[1], unpack(ARGV, 4))
end
local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'k', 'room_updated', 'r', '', 'd', ARGV[1])
redis.call(PUBLISH, ARGV[3], 'room_updated\n' .. id .. '\n\n' .. ARGV[1])
return {'ok', id}
