-- Create a room's meta hash unless the room exists.
-- KEYS[1] - room meta hash
-- ARGV[1..n] - field, value pairs (must include "state")
-- returns 1 if created, 0 if the room already exists
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
local t = redis.call('TIME')
redis.call('HSET', KEYS[1], 'created_at', t[1] * 1000 + math.floor(t[2] / 1000), unpack(ARGV))
return 1
