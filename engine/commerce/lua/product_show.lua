-- The host's run-of-show: reorder the lineup (a permutation of the room's products) or
-- pin the product being presented ("" unpins). Logged for viewers, who update on the next tick.
-- KEYS[1] - room meta hash
-- KEYS[2] - room products hash
-- KEYS[3] - room lineup (list)
-- KEYS[4] - room log stream
-- ARGV[1] - "pin" (ARGV[4] is a product id or "") or "order" (ARGV[4..n] are product ids)
-- ARGV[2] - approximate MAXLEN of the room log
-- ARGV[3] - bus channel
-- ARGV[4..n] - see ARGV[1]
-- returns {"ok", entry id} | {"err", "product_not_found" | "not_a_permutation"}
local kind, ref, data
if ARGV[1] == 'pin' then
  local id = ARGV[4]
  if id == '' then
    redis.call('HDEL', KEYS[1], 'pinned_product')
    kind, ref, data = 'product_unpinned', '', '{}'
  else
    local product = redis.call('HGET', KEYS[2], id)
    if not product then
      return {'err', 'product_not_found'}
    end
    redis.call('HSET', KEYS[1], 'pinned_product', id)
    kind, ref, data = 'product_pinned', id, product
  end
else
  local current = redis.call('LRANGE', KEYS[3], 0, -1)
  local wanted = {}
  for i = 4, #ARGV do
    if wanted[ARGV[i]] then
      return {'err', 'not_a_permutation'}
    end
    wanted[ARGV[i]] = true
  end
  if #current ~= #ARGV - 3 then
    return {'err', 'not_a_permutation'}
  end
  for _, id in ipairs(current) do
    if not wanted[id] then
      return {'err', 'not_a_permutation'}
    end
  end
  redis.call('DEL', KEYS[3])
  if #ARGV > 3 then
    redis.call('RPUSH', KEYS[3], unpack(ARGV, 4))
  end
  data = '{"products":[]}'  -- cjson would write an empty table as {}
  if #ARGV > 3 then
    data = cjson.encode({products = {unpack(ARGV, 4)}})
  end
  kind, ref = 'lineup_changed', ''
end
local entry = redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[2], '*', 'k', kind, 'r', ref, 'd', data)
redis.call(PUBLISH, ARGV[3], kind .. '\n' .. entry .. '\n' .. ref .. '\n' .. data)
return {'ok', entry}
