-- Post a viewer's comment: check the room, ban, mute, slow mode and rate limit, then
-- append the comment to the room log and publish it, all in one atomic step so the
-- limits hold across every engine process.
-- KEYS[1] - room meta hash
-- KEYS[2] - room log stream (entries: k = kind, r = referenced entry id or "", d = JSON data)
-- KEYS[3] - room banned-users set
-- KEYS[4] - the user's mute key
-- KEYS[5] - the user's slow-mode key
-- KEYS[6] - the user's rate-limit counter
-- ARGV[1] - user id
-- ARGV[2] - "1" when the author is a host or moderator (exempt from limits), else "0"
-- ARGV[3] - entry data, a JSON object
-- ARGV[4] - approximate MAXLEN of the log
-- ARGV[5] - bus channel
-- returns {"ok", entry_id} | {"err", code, retry_after_ms}
local state = redis.call('HGET', KEYS[1], 'state')
if not state then
  return {'err', 'room_not_found', '0'}
end
if state == 'ended' then
  return {'err', 'room_not_open', '0'}
end
if ARGV[2] ~= '1' then
  if redis.call('SISMEMBER', KEYS[3], ARGV[1]) == 1 then
    return {'err', 'banned', '0'}
  end
  local mute_ttl = redis.call('PTTL', KEYS[4])
  if mute_ttl > 0 then
    return {'err', 'muted', tostring(mute_ttl)}
  end
  local settings = redis.call('HMGET', KEYS[1], 'slow_mode_ms', 'comment_rate_max', 'comment_rate_window_ms')
  local slow_ms = tonumber(settings[1] or '0')
  local rate_max = tonumber(settings[2] or '0')
  local window_ms = tonumber(settings[3] or '0')
  if slow_ms > 0 then
    local wait = redis.call('PTTL', KEYS[5])
    if wait > 0 then
      return {'err', 'slow_mode', tostring(wait)}
    end
  end
  if rate_max > 0 and window_ms > 0 then
    local count = redis.call('INCR', KEYS[6])
    if count == 1 then
      redis.call('PEXPIRE', KEYS[6], window_ms)
    end
    if count > rate_max then
      return {'err', 'rate_limited', tostring(redis.call('PTTL', KEYS[6]))}
    end
  end
  if slow_ms > 0 then
    redis.call('SET', KEYS[5], '1', 'PX', slow_ms)
  end
end
local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'k', 'comment', 'r', '', 'd', ARGV[3])
redis.call(PUBLISH, ARGV[5], 'comment\n' .. id .. '\n\n' .. ARGV[3])
return {'ok', id}
