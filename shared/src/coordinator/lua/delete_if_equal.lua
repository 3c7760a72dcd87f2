-- Deletes a key only if it still holds the caller's value (an ownership
-- lock's token, a user's active session id).
-- KEYS[1] = the key; ARGV[1] = the expected value
-- Returns 1 if deleted, 0 otherwise.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
