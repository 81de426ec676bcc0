-- Pin a comment above the room's feed (replacing any pin), or unpin with an empty id.
-- KEYS[1] - room meta hash
-- KEYS[2] - room log stream
-- ARGV[1] - id of the comment's entry to pin, or "" to unpin
-- ARGV[2] - approximate MAXLEN of the log
-- ARGV[3] - bus channel
-- returns {"ok", entry_id, pinned comment data or ""} | {"err", code}
local kind, data
if ARGV[1] == '' then
  if redis.call('HEXISTS', KEYS[1], 'pinned_id') == 0 then
    return {'err', 'comment_not_found'}
  end
  redis.call('HDEL', KEYS[1], 'pinned_id', 'pinned')
  kind = 'comment_unpinned'
  data = '{}'
else
  local found = redis.call('XRANGE', KEYS[2], ARGV[1], ARGV[1])
  if #found == 0 or found[1][2][2] ~= 'comment' then
    return {'err', 'comment_not_found'}
  end
  data = found[1][2][6]
  redis.call('HSET', KEYS[1], 'pinned_id', ARGV[1], 'pinned', data)
  kind = 'comment_pinned'
end
local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'k', kind, 'r', ARGV[1], 'd', data)
redis.call(PUBLISH, ARGV[3], kind .. '\n' .. id .. '\n' .. ARGV[1] .. '\n' .. data)
return {'ok', id, data}
