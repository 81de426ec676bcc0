-- Record the n-th offer of a closed auction's lot (1: the winner's; later ones: second
-- chances to runners-up, logged as `auction_offered`). Once per n: the award behind it is
-- idempotent too, so two processes settling the same auction agree.
-- KEYS[1] - the auction hash
-- KEYS[2] - room log stream
-- ARGV[1] - approximate MAXLEN of the room log
-- ARGV[2] - bus channel
-- ARGV[3] - offer number n
-- ARGV[4] - the offer, a JSON object (user, price, reservation, expires_at)
-- returns {"ok"} | {"replay"} | {"err", "auction_not_found" | "auction_open" | "out_of_order"}
local a = redis.call('HMGET', KEYS[1], 'id', 'state', 'offers')
if not a[1] then
  return {'err', 'auction_not_found'}
end
if a[2] ~= 'closed' then
  return {'err', 'auction_open'}
end
local n = tonumber(ARGV[3])
if redis.call('HEXISTS', KEYS[1], 'offer:' .. n) == 1 then
  return {'replay'}
end
if n ~= tonumber(a[3]) + 1 then
  return {'err', 'out_of_order'}
end
redis.call('HSET', KEYS[1], 'offer:' .. n, ARGV[4], 'offers', n)
if n > 1 then
  local offer = cjson.decode(ARGV[4])
  local data = cjson.encode({auction = a[1], user = offer['user'], price = offer['price'],
    offer = n})
  local entry = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], '*', 'k', 'auction_offered', 'r', a[1], 'd', data)
  redis.call(PUBLISH, ARGV[2], 'auction_offered\n' .. entry .. '\n' .. a[1] .. '\n' .. data)
end
return {'ok'}
