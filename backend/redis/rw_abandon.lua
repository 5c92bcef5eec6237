-- rw_abandon.lua: undo a read or write attempt whose reply never came:
-- give back what it took (its holder's name carries the nonce), or else
-- mark the attempt void, so that it takes nothing if it is still on its
-- way.
--
-- KEYS[1]  the lock's sorted set (see rw_acquire.lua)
-- ARGV[1]  the attempt's nonce
-- ARGV[2]  the attempt's TTL in milliseconds: how long the mark lasts
--
-- Returns 1 if it gave a lock back, 0 if it marked the attempt void.
local _, now = clock()
local k = KEYS[1]
local m = holder(k, now, 2, ARGV[1])
if m then
  return give(k, m, now)
end
local ttl = tonumber(ARGV[2])
redis.call('ZADD', k, -expiry(now, ttl), 'v' .. ARGV[1])
atleast(k, ttl + 1)
return 0
