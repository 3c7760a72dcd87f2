-- Fixed window for one kind of notification: counts an occurrence and
-- says whether it may be sent.
-- KEYS[1] = window hash (start, window, count, held), KEYS[2] = set of the
-- users named by held-back occurrences, KEYS[3] = digest hash (held back
-- in ended windows, not yet taken: count, users).
-- ARGV[1] = capacity, ARGV[2] = window (ms), ARGV[3] = affected user ('' for
-- none), ARGV[4] = most users remembered, ARGV[5] = digest grace (ms).
-- Returns 1 (send) or 0 (held back). Uses the server's clock, so pods with
-- skewed clocks agree.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local capacity, window, grace = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[5])
local w = redis.call('HMGET', KEYS[1], 'start', 'window', 'held')
local start, length = tonumber(w[1]), tonumber(w[2])
if start and now >= start + length then
  -- The window is over: what it held back waits for its digest.
  local held = tonumber(w[3]) or 0
  if held > 0 then
    redis.call('HINCRBY', KEYS[3], 'count', held)
    redis.call('HINCRBY', KEYS[3], 'users', redis.call('SCARD', KEYS[2]))
    redis.call('PEXPIRE', KEYS[3], grace)
  end
  redis.call('DEL', KEYS[1], KEYS[2])
  start = nil
end
if not start then
  redis.call('HSET', KEYS[1], 'start', now, 'window', window, 'count', 1, 'held', 0)
  redis.call('PEXPIRE', KEYS[1], window)
  return 1
end
local count = redis.call('HINCRBY', KEYS[1], 'count', 1)
if count <= capacity then
  return 1
end
redis.call('HINCRBY', KEYS[1], 'held', 1)
if ARGV[3] ~= '' and redis.call('SCARD', KEYS[2]) < tonumber(ARGV[4]) then
  redis.call('SADD', KEYS[2], ARGV[3])
end
-- Kept past the window's end until a digest takes it.
local keep = start + length - now + grace
redis.call('PEXPIRE', KEYS[1], keep)
redis.call('PEXPIRE', KEYS[2], keep)
return 0
