-- Extends an ownership lock only if it still carries the caller's token.
-- KEYS[1] = chat:{s:<sid>}:owner; ARGV[1] = token, ARGV[2] = TTL (ms)
-- Returns 1 if renewed, 0 if the lock is gone or someone else's.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
