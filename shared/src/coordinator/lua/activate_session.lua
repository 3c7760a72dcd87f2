-- The user's active session, or the candidate if there is none.
-- KEYS[1] = chat:{u:<uid>}:active; ARGV[1] = candidate session id
-- Returns { session id, 1 if the candidate was set else 0 }.
local current = redis.call('GET', KEYS[1])
if current then
  redis.call('PERSIST', KEYS[1])
  return { current, 0 }
end
redis.call('SET', KEYS[1], ARGV[1])
return { ARGV[1], 1 }
