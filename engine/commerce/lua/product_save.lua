-- Create or replace a product with its SKUs; SKUs are unique within the room. A new
-- product joins the end of the run-of-show. Logged for viewers when it changes.
-- KEYS[1] - room products hash (product id -> JSON)
-- KEYS[2] - room SKU index (SKU -> product id)
-- KEYS[3] - room lineup (list of product ids)
-- KEYS[4] - room log stream
-- ARGV[1] - product id
-- ARGV[2] - product JSON
-- ARGV[3] - "1" to create (fails if it exists), "0" to replace (fails if it does not)
-- ARGV[4] - approximate MAXLEN of the room log
-- ARGV[5] - bus channel
-- ARGV[6..n] - the product's SKUs
-- returns {"ok"} | {"err", "sku_taken", sku} | {"err", "product_exists" | "product_not_found", ""}
local id = ARGV[1]
local old = redis.call('HGET', KEYS[1], id)
if ARGV[3] == '1' and old then
  return {'err', 'product_exists', ''}
end
if ARGV[3] == '0' and not old then
  return {'err', 'product_not_found', ''}
end
for i = 6, #ARGV do
  local owner = redis.call('HGET', KEYS[2], ARGV[i])
  if owner and owner ~= id then
    return {'err', 'sku_taken', ARGV[i]}
  end
end
if old then
  for _, sku in ipairs(cjson.decode(old)['skus']) do
    redis.call('HDEL', KEYS[2], sku['sku'])
  end
end
for i = 6, #ARGV do
  redis.call('HSET', KEYS[2], ARGV[i], id)
end
redis.call('HSET', KEYS[1], id, ARGV[2])
if not old then
  redis.call('RPUSH', KEYS[3], id)
end
local entry = redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[4], '*', 'k', 'product_updated', 'r', id, 'd', ARGV[2])
redis.call(PUBLISH, ARGV[5], 'product_updated\n' .. entry .. '\n' .. id .. '\n' .. ARGV[2])
return {'ok'}
