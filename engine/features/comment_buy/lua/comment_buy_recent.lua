-- Comment-to-buy: the grab request id for a buy comment. A repeat of the same order
-- (same user, sale and quantity) within the window gets the earlier comment's id, so the
-- grab replays its answer instead of buying twice (a client resending a comment after a
-- lost ack, or a viewer typing it again).
-- KEYS[1] - the user's recent-order key for this sale and quantity
-- ARGV[1] - a fresh request id, used when there is no recent order
-- ARGV[2] - the window in ms
-- returns {"new", ARGV[1]} | {"repeat", the earlier request id}
local earlier = redis.call('GET', KEYS[1])
if earlier then
  return {'repeat', earlier}
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return {'new', ARGV[1]}
