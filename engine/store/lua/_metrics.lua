-- include: `count_metric(key, metric, n, dim)`, engine/store/meter.py's Meter.count done in a
-- script, for what a script decides and counts with its outcome: `n` added to this minute's
-- "<minute>:<metric>", the show's "t:<metric>", and with `dim` "t:<metric>.<dim>". A money
-- metric names its currency (`'gmv.' .. currency`), as Meter.money does. Needs `now` (_now).
local function count_metric(key, metric, n, dim)
  redis.call('HINCRBY', key, math.floor(now / 60000) .. ':' .. metric, n)
  redis.call('HINCRBY', key, 't:' .. metric, n)
  if dim then
    redis.call('HINCRBY', key, 't:' .. metric .. '.' .. dim, n)
  end
end
