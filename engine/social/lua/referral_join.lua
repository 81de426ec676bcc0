-- First-touch attribution of a viewer who joined through a share link: the first valid
-- referrer recorded for the viewer in this room wins, and each such join is one invite.
-- KEYS[1] - the referred-by hash (viewer -> "referrer joined_at_ms")
-- KEYS[2] - the invite leaderboard (sorted set: referrer -> invites)
-- ARGV[1] - the viewer
-- ARGV[2] - the referrer
-- ARGV[3] - now in ms, or "" for Redis server time
-- returns 1 if the viewer is now attributed to the referrer, 0 if already attributed
local clock_arg = ARGV[3]
--!include _now
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2] .. ' ' .. now) == 0 then
  return 0
end
redis.call('ZINCRBY', KEYS[2], 1, ARGV[2])
return 1
