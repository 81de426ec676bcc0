-- The host moves an order along: "fulfill" (paid -> fulfilled, refused while flagged for
-- review) or "approve" (clears a review flag).
-- KEYS[1] - the order hash
-- KEYS[2] - room order events stream
-- ARGV[1] - now in ms, or "" for Redis server time
-- ARGV[2] - approximate MAXLEN of the order events stream
-- ARGV[3] - "fulfill" | "approve"
-- ARGV[4] - who
-- returns {"ok", state} | {"err", code, detail}
local clock_arg = ARGV[1]
--!include _now
local order = redis.call('HMGET', KEYS[1], 'id', 'state', 'review', 'user')
if not order[1] then
  return {'err', 'order_not_found', ''}
end
local action = ARGV[3]
if action == 'approve' then
  if order[3] ~= 'flagged' then
    return {'err', 'not_flagged', order[3] or ''}
  end
  redis.call('HSET', KEYS[1], 'review', 'approved', 'reviewed_by', ARGV[4], 'reviewed_at', now)
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'type', 'order_approved',
    'order', order[1], 'user', order[4], 'by', ARGV[4], 'at', now)
  return {'ok', order[2]}
end
if order[2] ~= 'paid' then
  return {'err', 'illegal_transition', order[2]}
end
if order[3] == 'flagged' then
  return {'err', 'review_pending', ''}
end
redis.call('HSET', KEYS[1], 'state', 'fulfilled', 'fulfilled_at', now, 'fulfilled_by', ARGV[4])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'type', 'order_fulfilled',
  'order', order[1], 'user', order[4], 'by', ARGV[4], 'at', now)
return {'ok', 'fulfilled'}
