-- Delete a comment: remove it from the log so joiners never see it, and append a
-- `comment_deleted` entry so viewers who saw it (or resume past it) remove it too.
-- Deleting the pinned comment also unpins it.
-- KEYS[1] - room meta hash
-- KEYS[2] - room log stream
-- ARGV[1] - id of the comment's entry
-- ARGV[2] - event data, a JSON object
-- ARGV[3] - approximate MAXLEN of the log
-- ARGV[4] - bus channel
-- returns {"ok", entry_id} | {"err", code}
local found = redis.call('XRANGE', KEYS[2], ARGV[1], ARGV[1])
if #found == 0 or found[1][2][2] ~= 'comment' then
  return {'err', 'comment_not_found'}
end
redis.call('XDEL', KEYS[2], ARGV[1])
if redis.call('HGET', KEYS[1], 'pinned_id') == ARGV[1] then
  redis.call('HDEL', KEYS[1], 'pinned_id', 'pinned')
end
local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'k', 'comment_deleted', 'r', ARGV[1], 'd', ARGV[2])
redis.call(PUBLISH, ARGV[4], 'comment_deleted\n' .. id .. '\n' .. ARGV[1] .. '\n' .. ARGV[2])
return {'ok', id}
