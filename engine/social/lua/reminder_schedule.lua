-- Schedule a reminder event once: calls for an event that exists (another process's
-- sweep, a later sweep) change nothing, so each event is due exactly once.
-- KEYS[1] - the event hash
-- KEYS[2] - the due sorted set (event id -> due ms)
-- ARGV[1] - the event id
-- ARGV[2] - due at (ms)
-- ARGV[3] - the kind ("going_live" | "sale_soon")
-- ARGV[4] - the payload, JSON
-- returns 1 if scheduled by this call, 0 if the event already existed
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'kind', ARGV[3], 'due_at', ARGV[2], 'state', 'pending',
  'attempt', 0, 'payload', ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
return 1
