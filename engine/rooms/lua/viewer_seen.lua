-- Count a viewer identity's first join of the room towards unique viewers. Anonymous
-- identities (device ids a client makes up) are counted at most ARGV[4] per client address
-- and room; beyond that they join uncounted, so invented device ids cannot inflate the
-- room's unique viewers or the host's audience.
-- KEYS[1] - room unique viewers hash (identity -> first join ms)
-- KEYS[2] - room anonymous identities counted per address (hash: address -> count)
-- ARGV[1] - the identity
-- ARGV[2] - now in ms
-- ARGV[3] - the client's address for an anonymous identity; "" for a signed-in one
-- ARGV[4] - most anonymous identities counted per address
-- returns 1 for a first join (counted), 0 for an identity seen before, -1 for an anonymous
--   first join beyond its address's bound (not counted, not remembered)
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
  return 0
end
if ARGV[3] ~= '' then
  local counted = tonumber(redis.call('HGET', KEYS[2], ARGV[3]) or '0')
  if counted >= tonumber(ARGV[4]) then
    return -1
  end
  redis.call('HINCRBY', KEYS[2], ARGV[3], 1)
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
