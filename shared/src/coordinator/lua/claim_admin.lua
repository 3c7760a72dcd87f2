-- Takes a session's takeover lock, or renews it for the admin who holds it.
-- KEYS[1] = chat:{s:<sid>}:admin
-- ARGV[1] = admin id, ARGV[2] = the value to store if free, ARGV[3] = TTL (ms)
-- Returns {0, value} taken, {1, value} resumed (same admin), {2, value} held by another.
local held = redis.call('GET', KEYS[1])
if not held then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return {0, ARGV[2]}
end
if string.sub(held, 1, #ARGV[1] + 1) == ARGV[1] .. '/' then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return {1, held}
end
return {2, held}
