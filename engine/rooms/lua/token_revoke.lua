-- Revoke a user's tokens for a room: those issued up to a second are refused from now on
-- (engine/rooms/access.py). The cut-off only moves forward, whichever engine's clock is ahead.
-- KEYS[1] - the room's revocations hash (user -> cut-off, Unix seconds)
-- ARGV[1] - user id
-- ARGV[2] - cut-off, Unix seconds (now)
-- ARGV[3] - bus channel (open sockets of the user are closed)
-- returns the cut-off kept
local before = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if tonumber(ARGV[2]) > before then
  before = tonumber(ARGV[2])
  redis.call('HSET', KEYS[1], ARGV[1], before)
end
redis.call(PUBLISH, ARGV[3], 'revoked\n\n\n{"user":"' .. ARGV[1] .. '","before":' .. before .. '}')
return before
