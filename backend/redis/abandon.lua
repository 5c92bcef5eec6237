-- abandon.lua: undo an acquire whose reply never came (the caller's
-- context ended, or the connection broke): release the lock if that
-- attempt took it, or else mark the attempt void, so that it takes nothing
-- if it is still on its way.
--
-- KEYS[1]  the lock's key (see acquire.lua)
-- ARGV[1]  the abandoned attempt's nonce
-- ARGV[2]  how long the fencing counter outlives the lock, in milliseconds
-- ARGV[3]  the attempt's lock TTL in milliseconds: how long the mark lasts
--          at least
--
-- Returns 1 if it released the attempt's lock, 0 if it marked it void.
local v = get(KEYS[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
if v then
  -- The short layout: the attempt's lock is released, or the key becomes
  -- a hash, which holds void marks.
  local tok, own = holder(v)
  if tok and own == ARGV[1] then
    unhold(KEYS[1], tok, tonumber(ARGV[2]))
    return 1
  end
  tohash(KEYS[1], v, now, tonumber(ARGV[2]))
end
local h = redis.call('HMGET', KEYS[1], 'tok', 'exp', 'own', 'q')
if h[1] and tonumber(h[2]) > now and h[3] == ARGV[1] then
  free(KEYS[1], now, tonumber(ARGV[2]), h[4])
  return 1
end
-- One mark per attempt: several attempts on one key can be on their way
-- at once (a frozen server queues them all), and each must find its own.
-- A mark holds the time until which it is kept; marks past it are dropped
-- here (this path is rare), so they do not pile up on a key that is never
-- idle long enough to expire.
local ttl = tonumber(ARGV[3])
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if string.sub(all[i], 1, 5) == 'void:' and tonumber(all[i + 1]) <= now then
    redis.call('HDEL', KEYS[1], all[i])
  end
end
redis.call('HSET', KEYS[1], 'void:' .. ARGV[1], string.format('%.0f', now + ttl * 1000))
if redis.call('PTTL', KEYS[1]) < ttl then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return 0
