-- Takes the ownership lock of a session for a connection, whoever held it.
-- KEYS[1] = chat:{s:<sid>}:owner, KEYS[2] = chat:{s:<sid>}:fence
-- ARGV[1] = pod id, ARGV[2] = connection id, ARGV[3] = lock TTL (ms),
-- ARGV[4] = fence counter TTL (ms)
-- Returns { fence, previous owner value or "" }.
local fence = redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
local previous = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1] .. '/' .. ARGV[2] .. '/' .. fence, 'PX', ARGV[3])
return { fence, previous or '' }
