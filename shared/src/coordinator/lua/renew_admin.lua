-- Extends a takeover lock if the named admin still holds it.
-- KEYS[1] = chat:{s:<sid>}:admin; ARGV[1] = admin id, ARGV[2] = TTL (ms)
-- Returns 1 if renewed, 0 otherwise.
local held = redis.call('GET', KEYS[1])
if held and string.sub(held, 1, #ARGV[1] + 1) == ARGV[1] .. '/' then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
