-- Append one entry to the room log and publish it like every entry (for entries that are
-- not part of a larger atomic change: a comment-to-buy confirmation, a new group-buy deal).
-- KEYS[1] - room log stream
-- ARGV[1] - the entry's kind
-- ARGV[2] - the entry's ref (the id of what it is about)
-- ARGV[3] - entry data, a JSON object
-- ARGV[4] - approximate MAXLEN of the log
-- ARGV[5] - bus channel
-- returns the entry id
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[4], '*', 'k', ARGV[1], 'r', ARGV[2], 'd', ARGV[3])
redis.call(PUBLISH, ARGV[5], ARGV[1] .. '\n' .. id .. '\n' .. ARGV[2] .. '\n' .. ARGV[3])
return id
