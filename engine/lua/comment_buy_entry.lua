-- Comment-to-buy: the public confirmation of a reservation made by comment, appended to
-- the room log and published like every entry.
-- KEYS[1] - room log stream
-- ARGV[1] - the sale id (the entry's ref)
-- ARGV[2] - entry data, a JSON object
-- ARGV[3] - approximate MAXLEN of the log
-- ARGV[4] - bus channel
-- returns the entry id
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 'k', 'comment_buy', 'r', ARGV[1], 'd', ARGV[2])
redis.call('PUBLISH', ARGV[4], 'comment_buy\n' .. id .. '\n' .. ARGV[1] .. '\n' .. ARGV[2])
return id
