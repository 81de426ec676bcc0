-- One engine process's periodic exchange for one room: report its online viewers and
-- the likes it aggregated, and read the room-wide totals. Entries of processes that
-- stopped reporting (crashed) are dropped after ARGV[4] ms. A reporting call also
-- samples the room's online count into this minute's metrics (engine/store/meter.py).
-- KEYS[1] - room presence hash (process id -> "count|reported_at_ms")
-- KEYS[2] - room likes counter
-- KEYS[3] - room peak-concurrent counter
-- KEYS[4] - room viewers hash (identity -> first seen; HLEN = unique viewers)
-- KEYS[5] - room metrics hash ("<minute>:<metric>" and "t:<metric>" counters)
-- ARGV[1] - process id
-- ARGV[2] - viewers online on this process ("-1" removes this process's entry)
-- ARGV[3] - likes to add
-- ARGV[4] - staleness horizon in ms
-- returns {online, peak, likes, unique}
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local minute = math.floor(tonumber(t[1]) / 60)
local mine = tonumber(ARGV[2])
if mine < 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
else
  redis.call('HSET', KEYS[1], ARGV[1], mine .. '|' .. now)
end
local online = 0
local entries = redis.call('HGETALL', KEYS[1])
for i = 1, #entries, 2 do
  local sep = string.find(entries[i + 1], '|', 1, true)
  local count = tonumber(string.sub(entries[i + 1], 1, sep - 1))
  local at = tonumber(string.sub(entries[i + 1], sep + 1))
  if now - at > tonumber(ARGV[4]) then
    redis.call('HDEL', KEYS[1], entries[i])
  else
    online = online + count
  end
end
local likes
local delta = tonumber(ARGV[3])
if delta > 0 then
  likes = redis.call('INCRBY', KEYS[2], delta)
  redis.call('HINCRBY', KEYS[5], minute .. ':likes', delta)
  redis.call('HINCRBY', KEYS[5], 't:likes', delta)
else
  likes = tonumber(redis.call('GET', KEYS[2]) or '0')
end
if mine >= 0 then
  redis.call('HINCRBY', KEYS[5], minute .. ':online_sum', online)
  redis.call('HINCRBY', KEYS[5], minute .. ':online_samples', 1)
  local top = minute .. ':online_max'
  if online > tonumber(redis.call('HGET', KEYS[5], top) or '-1') then
    redis.call('HSET', KEYS[5], top, online)
  end
end
local peak = tonumber(redis.call('GET', KEYS[3]) or '0')
if online > peak then
  peak = online
  redis.call('SET', KEYS[3], peak)
end
return {online, peak, likes, redis.call('HLEN', KEYS[4])}
