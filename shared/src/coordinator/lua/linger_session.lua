-- Sets or clears the expiry of the user's active session if it is still
-- the given one. KEYS[1] = chat:{u:<uid>}:active; ARGV[1] = session id,
-- ARGV[2] = TTL (ms), or 0 to make it persistent.
-- Returns 1 if the key was the given session, 0 otherwise.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
if tonumber(ARGV[2]) > 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
else
  redis.call('PERSIST', KEYS[1])
end
return 1
