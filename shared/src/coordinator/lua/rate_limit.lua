-- Token bucket: takes up to ARGV[3] tokens (a lease), at least 1 if the
-- bucket holds one.
-- KEYS[1] = chat:rl:...; ARGV[1] = capacity, ARGV[2] = refill window (ms):
-- the bucket refills `capacity` tokens per window; ARGV[3] = tokens wanted
-- (default 1).
-- Returns { granted, 0 } when at least one token was taken, { 0, ms until
-- a token is back } otherwise.
-- Uses the server's clock, so pods with skewed clocks agree.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local capacity = tonumber(ARGV[1])
local rate = capacity / tonumber(ARGV[2])
local want = math.max(1, tonumber(ARGV[3]) or 1)
local bucket = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(bucket[1]) or capacity
local ts = tonumber(bucket[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - ts) * rate)
local granted, retry = math.min(want, math.floor(tokens)), 0
if granted >= 1 then
  tokens = tokens - granted
else
  granted = 0
  retry = math.ceil((1 - tokens) / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', now)
redis.call('PEXPIRE', KEYS[1], math.ceil((capacity - tokens) / rate) + 1000)
return { granted, retry }
