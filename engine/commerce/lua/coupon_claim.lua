-- Claim coupons of one drop for a batch of requests, in order, atomically: claim window,
-- the drop's customer tiers, per-user limit (per template, across drops), idempotency by
-- request id, and the drop's remaining count. A drop is never over-issued; a request gets
-- one coupon or none. A private drop (a giveaway's prizes) answers only its owner: to anyone
-- else it does not exist. A tiered drop refuses a user whose tier in the room's tier map
-- (a user it does not name is a "prospect") is not one of the drop's.
-- KEYS[1] - the drop hash
-- KEYS[2] - the drop's answers hash ("user request-id" -> answer JSON)
-- KEYS[3] - room coupons hash (coupon id -> JSON record)
-- KEYS[4] - room coupon holders hash ("template user" -> coupons claimed)
-- KEYS[5] - room wallets hash (user -> space-separated coupon ids)
-- KEYS[6] - room outbox stream
-- KEYS[7] - room customer tiers hash (user -> tier; read only for a tiered drop)
-- ARGV[1] - now in ms, or "" for Redis server time
-- ARGV[2] - approximate MAXLEN of the outbox
-- ARGV[3] - who claims: "" for viewers, a private drop's owner on its winners' behalf
-- ARGV[4..n] - the requests, two values each: user, request id
-- returns one string per request: "0" .. answer for a new answer, "1" .. answer for a replay
local clock_arg = ARGV[1]
--!include _now
local drop = redis.call('HMGET', KEYS[1], 'id', 'template', 'remaining', 'limit', 'opens_at',
  'closes_at', 'seq', 'private', 'tiers')
local results = {}
if not drop[1] or (drop[8] or '') ~= ARGV[3] then
  for i = 4, #ARGV, 2 do
    results[#results + 1] = '0{"status":"drop_not_found"}'
  end
  return results
end
local id, template, remaining, limit = drop[1], drop[2], tonumber(drop[3]), tonumber(drop[4])
local opens, closes, seq = tonumber(drop[5]), tonumber(drop[6]), tonumber(drop[7])
local tiers = drop[9]
local allowed = nil
if tiers then
  allowed = {}
  for _, tier in ipairs(cjson.decode(tiers)) do
    allowed[tier] = true
  end
end
local claimed = 0
for i = 4, #ARGV, 2 do
  local user, request = ARGV[i], ARGV[i + 1]
  local answer_key = user .. ' ' .. request
  local previous = redis.call('HGET', KEYS[2], answer_key)
  if previous then
    results[#results + 1] = '1' .. previous
  else
    local answer
    local holder = template .. ' ' .. user
    if now >= closes then
      answer = '{"status":"ended"}'
    elseif now < opens then
      answer = '{"status":"not_started","opens_at":' .. opens .. '}'
    elseif allowed and not allowed[redis.call('HGET', KEYS[7], user) or 'prospect'] then
      answer = '{"status":"tier_not_eligible","tiers":' .. tiers .. '}'
    else
      local holding = tonumber(redis.call('HGET', KEYS[4], holder) or '0')
      if holding >= limit then
        answer = '{"status":"limit_reached","limit":' .. limit .. '}'
      elseif remaining <= 0 then
        answer = '{"status":"sold_out"}'
      else
        remaining = remaining - 1
        claimed = claimed + 1
        seq = seq + 1
        local coupon = id .. '.' .. seq
        redis.call('HSET', KEYS[4], holder, holding + 1)
        redis.call('HSET', KEYS[3], coupon, '{"u":"' .. user .. '","t":"' .. template ..
          '","d":"' .. id .. '","s":"claimed","c":' .. now .. '}')
        local wallet = redis.call('HGET', KEYS[5], user)
        redis.call('HSET', KEYS[5], user, wallet and (wallet .. ' ' .. coupon) or coupon)
        redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[2], '*', 'type', 'coupon_claimed',
          'drop', id, 'coupon', coupon, 'template', template, 'user', user, 'at', now)
        answer = '{"status":"claimed","coupon":"' .. coupon .. '","template":"' .. template .. '"}'
      end
    end
    redis.call('HSET', KEYS[2], answer_key, answer)
    results[#results + 1] = '0' .. answer
  end
end
if claimed > 0 then
  redis.call('HSET', KEYS[1], 'remaining', remaining, 'seq', seq)
  redis.call('HINCRBY', KEYS[1], 'claimed', claimed)
end
return results
