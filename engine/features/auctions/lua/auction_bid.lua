-- Apply one bid atomically, by the rules of engine/features/auctions/rules.py (the reference: keep the
-- two in step): minimum bid, proxy maximum, outbid by the leader's proxy, anti-sniping.
-- Accepted bids are appended to the bid log and logged to the room as `auction_bid`.
-- KEYS[1] - the auction hash
-- KEYS[2] - the auction's bid log (list of JSON bids)
-- KEYS[3] - room open auctions (sorted set: auction id -> ends_at ms)
-- KEYS[4] - room log stream
-- ARGV[1] - now in ms, or "" for Redis server time
-- ARGV[2] - approximate MAXLEN of the room log
-- ARGV[3] - bus channel
-- ARGV[4] - user
-- ARGV[5] - the user's display name
-- ARGV[6] - amount (minor units)
-- ARGV[7] - proxy max (minor units; 0 for none)
-- returns {outcome ("leading" | "raised" | "outbid"), price, leader, min_bid, ends_at, bids,
--   previous leader or ""} | {"err", "auction_not_found" | "auction_closed" | "bid_too_low", min_bid}
local a = redis.call('HMGET', KEYS[1], 'id', 'state', 'ends_at', 'start_price', 'increments',
  'price', 'leader', 'leader_max', 'bids', 'mode', 'extend_ms', 'leader_name')
if not a[1] then
  return {'err', 'auction_not_found', 0}
end
local clock_arg = ARGV[1]
--!include _now
local ends = tonumber(a[3])
if a[2] ~= 'open' or now >= ends then
  return {'err', 'auction_closed', 0}
end
local incs = cjson.decode(a[5])
local function step(p)
  local s = incs[1][2]
  for _, row in ipairs(incs) do
    if p >= row[1] then
      s = row[2]
    end
  end
  return s
end
local price, leader, leader_max, bids = tonumber(a[6]), a[7], tonumber(a[8]), tonumber(a[9])
local leader_name = a[12]
local function min_bid()
  if leader == '' then
    return tonumber(a[4])
  end
  return price + step(price)
end
local user, name, amount, max_amount = ARGV[4], ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7])
if amount < min_bid() then
  return {'err', 'bid_too_low', min_bid()}
end
local ceiling = math.max(amount, max_amount)
local outcome, previous = 'leading', ''
if leader == '' then
  price, leader, leader_max, leader_name = amount, user, ceiling, name
elseif user == leader then
  outcome = 'raised'
  leader_max = math.max(leader_max, ceiling)
elseif ceiling > leader_max then
  previous = leader
  price = math.max(amount, math.min(ceiling, leader_max + step(leader_max)))
  leader, leader_max, leader_name = user, ceiling, name
else
  outcome = 'outbid'
  price = math.max(price, math.min(leader_max, ceiling + step(ceiling)))
end
bids = bids + 1
local extended = false
if a[10] == 'anti_snipe' and ends - now < tonumber(a[11]) then
  ends = now + tonumber(a[11])
  extended = true
  redis.call('ZADD', KEYS[3], ends, a[1])
end
redis.call('HSET', KEYS[1], 'price', price, 'leader', leader, 'leader_max', leader_max,
  'leader_name', leader_name, 'bids', bids, 'ends_at', ends)
redis.call('RPUSH', KEYS[2], cjson.encode({u = user, a = amount, m = ceiling, t = now, o = outcome,
  p = price}))
local data = cjson.encode({auction = a[1], price = price, leader = leader, leader_name = leader_name,
  bids = bids, min_bid = min_bid(), ends_at = ends, extended = extended})
local entry = redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[2], '*', 'k', 'auction_bid', 'r', a[1], 'd', data)
redis.call(PUBLISH, ARGV[3], 'auction_bid\n' .. entry .. '\n' .. a[1] .. '\n' .. data)
return {outcome, price, leader, min_bid(), ends, bids, previous}
