-- rw_refresh.lua: give the read or write lock a token holds a new TTL.
--
-- KEYS[1]  the lock's sorted set (see rw_acquire.lua)
-- ARGV[1]  the new TTL in milliseconds
-- ARGV[2]  how long the set outlives its holders, in milliseconds (the
--          fencing counter)
-- ARGV[3]  the token
--
-- Returns 1 if it extended, 0 if the token holds nothing.
local _, now = clock()
local m = holder(KEYS[1], now, 1, ARGV[3])
if not m then
  return 0
end
local ttl = tonumber(ARGV[1])
renew(KEYS[1], m, now, ttl)
atleast(KEYS[1], ttl + 1 + tonumber(ARGV[2]))
return 1
