-- Grab flash-sale units for a batch of requests, in order, atomically: sale window,
-- per-user cap, idempotency by request id, stock, the reservation record with its expiry
-- entry, and an outbox event. A unit is never reserved twice; a request is all or nothing.
-- KEYS[1] - the sale hash
-- KEYS[2] - the sale's reservations hash (reservation id -> JSON record)
-- KEYS[3] - the sale's per-user units hash (user -> units held or sold)
-- KEYS[4] - the sale's answers hash ("user request-id" -> answer JSON)
-- KEYS[5] - room expiry sorted set (reservation id -> expires_at ms)
-- KEYS[6] - room outbox stream
-- KEYS[7] - room show metrics hash (engine/store/meter.py's layout)
-- ARGV[1] - now in ms, or "" for Redis server time
-- ARGV[2] - approximate MAXLEN of the outbox
-- ARGV[3] - "1" to count the batch in the show metrics (written with the outcome, so a
--   process killed right after a rush loses none of its funnel), "0" not to
-- ARGV[4..n] - the requests, three values each: user, request id, quantity
-- returns one string per request: "0" .. answer for a new answer, "1" .. answer for a replay
local clock_arg = ARGV[1]
--!include _now
--!include _metrics
local sale = redis.call('HMGET', KEYS[1], 'id', 'starts_at', 'ends_at', 'available', 'limit',
  'hold_ms', 'price', 'currency', 'res_seq', 'private')
local results = {}
-- A private sale (an auction's lot, a giveaway's prizes) is only handed out by award.lua.
if not sale[1] or sale[10] then
  for i = 4, #ARGV, 3 do
    results[#results + 1] = '0{"status":"sale_not_found"}'
  end
  return results
end
local id, starts, ends = sale[1], tonumber(sale[2]), tonumber(sale[3])
local available, limit, hold = tonumber(sale[4]), tonumber(sale[5]), tonumber(sale[6])
local price, currency, seq = sale[7], sale[8], tonumber(sale[9])
local reserved = 0
local statuses = {}  -- new answers by status
local attempts = 0
-- Every request's stored answer and every user's units in two reads, and the batch's
-- writes of each kind in one call at the end: per request, a script call costs Redis about
-- half of what one call per field did (docs/architecture.md). Requests are still decided
-- one by one, in order; `given` and `holding` carry what earlier requests of this batch
-- decided, so a repeated request id replays and a user's second request counts the first.
local answer_keys, users = {}, {}
for i = 4, #ARGV, 3 do
  answer_keys[#answer_keys + 1] = ARGV[i] .. ' ' .. ARGV[i + 1]
  users[#users + 1] = ARGV[i]
end
if #users == 0 then
  return results
end
local stored = redis.call('HMGET', KEYS[4], unpack(answer_keys))
local held = redis.call('HMGET', KEYS[3], unpack(users))
local given, holding = {}, {}
local new_answers, new_holdings, new_reservations, new_expiries = {}, {}, {}, {}
for n = 1, #answer_keys do
  local i = 1 + 3 * n
  local user, quantity, answer_key = ARGV[i], tonumber(ARGV[i + 2]), answer_keys[n]
  local previous = given[answer_key] or stored[n]
  if previous then
    results[#results + 1] = '1' .. previous
  else
    local answer, status
    if now >= ends then
      status, answer = 'ended', '{"status":"ended"}'
    elseif now < starts then
      status, answer = 'not_started', '{"status":"not_started","starts_at":' .. starts .. '}'
    else
      local units = holding[user] or tonumber(held[n] or '0')
      if units + quantity > limit then
        status = 'limit_reached'
        answer = '{"status":"limit_reached","limit":' .. limit .. ',"holding":' .. units .. '}'
      elseif quantity > available then
        status, answer = 'sold_out', '{"status":"sold_out","available":' .. available .. '}'
      else
        status = 'reserved'
        available = available - quantity
        reserved = reserved + quantity
        seq = seq + 1
        holding[user] = units + quantity
        local reservation = id .. '.' .. seq
        local expires = now + hold
        new_holdings[#new_holdings + 1] = user
        new_holdings[#new_holdings + 1] = units + quantity
        new_reservations[#new_reservations + 1] = reservation
        new_reservations[#new_reservations + 1] = '{"u":"' .. user .. '","q":' .. quantity ..
          ',"s":"held","e":' .. expires .. ',"c":' .. now .. '}'
        new_expiries[#new_expiries + 1] = expires
        new_expiries[#new_expiries + 1] = reservation
        redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[2], '*', 'type', 'reserved', 'sale', id,
          'reservation', reservation, 'user', user, 'units', quantity, 'at', now)
        answer = '{"status":"reserved","reservation":"' .. reservation .. '","quantity":' ..
          quantity .. ',"expires_at":' .. expires .. ',"price":' .. price .. ',"currency":"' ..
          currency .. '"}'
      end
    end
    given[answer_key] = answer
    new_answers[#new_answers + 1] = answer_key
    new_answers[#new_answers + 1] = answer
    results[#results + 1] = '0' .. answer
    statuses[status] = (statuses[status] or 0) + 1
    attempts = attempts + 1
  end
end
if #new_answers > 0 then
  redis.call('HSET', KEYS[4], unpack(new_answers))
end
if #new_holdings > 0 then
  redis.call('HSET', KEYS[3], unpack(new_holdings))
  redis.call('HSET', KEYS[2], unpack(new_reservations))
  redis.call('ZADD', KEYS[5], unpack(new_expiries))
end
if ARGV[3] == '1' and attempts > 0 then
  count_metric(KEYS[7], 'grab_attempts', attempts, id)
  for status, n in pairs(statuses) do
    count_metric(KEYS[7], 'grab_results', n, status)
  end
  if statuses['reserved'] then
    count_metric(KEYS[7], 'reservations', statuses['reserved'], id)
  end
end
if reserved > 0 then
  redis.call('HSET', KEYS[1], 'available', available, 'res_seq', seq)
  redis.call('HINCRBY', KEYS[1], 'reserved', reserved)
end
return results
