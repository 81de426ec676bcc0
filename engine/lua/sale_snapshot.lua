-- Read everything about one sale in one atomic step, for the audit (a consistent snapshot
-- even while grabs, releases and the sweeper keep running).
-- KEYS[1] - the sale hash
-- KEYS[2] - the sale's reservations hash
-- KEYS[3] - the sale's per-user units hash
-- KEYS[4] - room expiry sorted set
-- KEYS[5] - the sale's waitlist (list)
-- KEYS[6] - the sale's waitlist members (set)
-- returns {sale hash, reservations hash, users hash, expiry entries with scores, waitlist,
--   waitlist members}, each flattened as Redis returns them
return {
  redis.call('HGETALL', KEYS[1]),
  redis.call('HGETALL', KEYS[2]),
  redis.call('HGETALL', KEYS[3]),
  redis.call('ZRANGE', KEYS[4], 0, -1, 'WITHSCORES'),
  redis.call('LRANGE', KEYS[5], 0, -1),
  redis.call('SMEMBERS', KEYS[6]),
}
