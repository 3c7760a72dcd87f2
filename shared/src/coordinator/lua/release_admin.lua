-- Releases a takeover lock if the named admin holds it.
-- KEYS[1] = chat:{s:<sid>}:admin; ARGV[1] = admin id
-- Returns the released value, or false.
local held = redis.call('GET', KEYS[1])
if held and string.sub(held, 1, #ARGV[1] + 1) == ARGV[1] .. '/' then
  redis.call('DEL', KEYS[1])
  return held
end
return false
