-- The live fields of a hash written by expiring_hash_set.lua; expired
-- ones are deleted on the way.
-- KEYS[1] = the hash
-- Returns a flat list: field, data, field, data, ...
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local all = redis.call('HGETALL', KEYS[1])
local live = {}
for i = 1, #all, 2 do
  local sep = string.find(all[i + 1], '/', 1, true)
  local expires = sep and tonumber(string.sub(all[i + 1], 1, sep - 1))
  if expires and expires > now then
    live[#live + 1] = all[i]
    live[#live + 1] = string.sub(all[i + 1], sep + 1)
  else
    redis.call('HDEL', KEYS[1], all[i])
  end
end
return live
