-- multi_refresh.lua: give every key of a multi-key lock a new TTL if its
-- token still holds them all, and change nothing otherwise.
--
-- KEYS     the locks' keys (see acquire.lua): a multi-key lock holds
--          hashes only, so a string is another holder's or free
-- ARGV[1]  the token
-- ARGV[2]  the new TTL in milliseconds
-- ARGV[3]  how long the fencing counter outlives the lock, in milliseconds
--
-- Returns 1 if it extended, 0 if the token does not hold every key.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local queued = {}
for i, k in ipairs(KEYS) do
  if get(k) ~= nil then
    return 0
  end
  local h = redis.call('HMGET', k, 'tok', 'exp', 'q')
  if h[1] ~= ARGV[1] or tonumber(h[2]) <= now then
    return 0
  end
  queued[i] = h[3]
end
local ttl = tonumber(ARGV[2])
local e = string.format('%.0f', now + ttl * 1000)
local life = ttl + tonumber(ARGV[3]) + 1 -- see acquire.lua
for i, k in ipairs(KEYS) do
  redis.call('HSET', k, 'exp', e)
  local keep = life
  if queued[i] then
    -- Waiters are queued: the hash keeps at least the time to live that
    -- covers their places, as in acquire.lua.
    keep = math.max(life, redis.call('PTTL', k))
  end
  redis.call('PEXPIRE', k, keep)
end
return 1
