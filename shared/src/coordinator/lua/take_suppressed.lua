-- Takes what was held back in the ended windows of one kind of
-- notification, for its digest: whoever runs this first gets it.
-- KEYS as in admit_notification.lua.
-- Returns { count, users }; { 0, 0 } when nothing is due.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local w = redis.call('HMGET', KEYS[1], 'start', 'window', 'held')
local start, length = tonumber(w[1]), tonumber(w[2])
local count, users = 0, 0
if start and now >= start + length then
  count = tonumber(w[3]) or 0
  users = redis.call('SCARD', KEYS[2])
  redis.call('DEL', KEYS[1], KEYS[2])
end
local d = redis.call('HMGET', KEYS[3], 'count', 'users')
count = count + (tonumber(d[1]) or 0)
users = users + (tonumber(d[2]) or 0)
redis.call('DEL', KEYS[3])
return { count, users }
