-- Deletes an ownership lock only if it still carries the caller's token.
-- KEYS[1] = chat:{s:<sid>}:owner; ARGV[1] = token
-- Returns 1 if released, 0 otherwise.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
