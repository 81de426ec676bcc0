-- Create a flash sale on a SKU, log its announcement for viewers, and record it in the outbox.
-- KEYS[1] - the sale hash (new)
-- KEYS[2] - room sales index (sorted set: sale id -> its number, i.e. creation order)
-- KEYS[3] - room log stream
-- KEYS[4] - room outbox stream
-- ARGV[1] - sale id
-- ARGV[2] - now in ms, or "" for Redis server time
-- ARGV[3] - countdown ms (0 starts now)
-- ARGV[4] - duration ms
-- ARGV[5] - allotment (units)
-- ARGV[6] - approximate MAXLEN of the room log
-- ARGV[7] - approximate MAXLEN of the outbox
-- ARGV[8] - bus channel
-- ARGV[9] - announcement data, a JSON object (sale, sku, product, title, price, currency, limit)
-- ARGV[10] - "1" to announce the sale to the room, "" for a private sale (no log entry)
-- ARGV[11..n] - field, value pairs stored with the sale (sku, product, title, price, currency, limit, hold_ms[, private])
-- returns {starts_at, ends_at, now} | {"err", "sale_exists"}
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {'err', 'sale_exists'}
end
local clock_arg = ARGV[2]
--!include _now
local starts = now + tonumber(ARGV[3])
local ends = starts + tonumber(ARGV[4])
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'created_at', now, 'starts_at', starts, 'ends_at', ends,
  'allotment', ARGV[5], 'topups', 0, 'available', ARGV[5], 'reserved', 0, 'sold', 0,
  'res_seq', 0, unpack(ARGV, 11))
redis.call('ZADD', KEYS[2], tonumber(string.sub(ARGV[1], 2)), ARGV[1])
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[7], '*', 'type', 'sale_created', 'sale', ARGV[1],
  'units', ARGV[5], 'at', now)
if ARGV[10] == '' then
  return {starts, ends, now}
end
local announcement = cjson.decode(ARGV[9])
announcement['starts_at'] = starts
announcement['ends_at'] = ends
announcement['server_time'] = now
announcement['allotment'] = tonumber(ARGV[5])
local data = cjson.encode(announcement)
local entry = redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[6], '*', 'k', 'sale_announced', 'r', ARGV[1], 'd', data)
redis.call(PUBLISH, ARGV[8], 'sale_announced\n' .. entry .. '\n' .. ARGV[1] .. '\n' .. data)
return {starts, ends, now}
