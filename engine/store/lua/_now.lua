-- include: `now`, the clock of a script: ARGV[<clock>] in ms when given (tests pin it),
-- else Redis server time. Expects `local clock_arg = ...` before the include.
local now = tonumber(clock_arg)
if not now then
  local t = redis.call('TIME')
  now = t[1] * 1000 + math.floor(t[2] / 1000)
end
