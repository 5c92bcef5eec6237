-- rw_release.lua: give back the read or write lock a token holds, and
-- tell the waiters.
--
-- KEYS[1]  the lock's sorted set (see rw_acquire.lua)
-- ARGV[1]  the token
--
-- Returns 1 if it did, 0 if the token holds nothing.
local _, now = clock()
local m = holder(KEYS[1], now, 1, ARGV[1])
if not m then
  return 0
end
return give(KEYS[1], m, now)
