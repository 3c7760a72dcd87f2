-- Sets one field of a hash whose fields expire one by one: the value is
-- '<expires_ms>/<data>' by the server's clock; the hash itself lives as
-- long as its longest field. Used for the admins watching a session and
-- for pod heartbeats.
-- KEYS[1] = the hash; ARGV[1] = field, ARGV[2] = TTL (ms), ARGV[3] = data
local t = redis.call('TIME')
local expires = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[2])
redis.call('HSET', KEYS[1], ARGV[1], string.format('%d', expires) .. '/' .. ARGV[3])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 1
