-- Reserves ARGV[1] sequence numbers of a session; returns the last one.
-- KEYS[1] = chat:{s:<sid>}:seq; ARGV[2] = TTL (ms) of the counter.
local last = redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return last
