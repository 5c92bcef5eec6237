-- zset_refresh.lua: give what a token holds on a semaphore or a
-- read-write lock a new TTL.
--
-- KEYS[1]  the sorted set (see zset.lua)
-- ARGV[1]  the new TTL in milliseconds
-- ARGV[2]  how long the set outlives its holders, in milliseconds (a
--          read-write lock's fencing counter; 0 for a semaphore)
-- ARGV[3..] the members the token may hold as (see zset_release.lua)
--
-- Returns 1 if it extended, 0 if the token held nothing.
local _, now = clock()
local ttl = tonumber(ARGV[1])
for i = 3, #ARGV do
  if renew(KEYS[1], ARGV[i], now, ttl) == 1 then
    atleast(KEYS[1], ttl + tonumber(ARGV[2]))
    return 1
  end
end
return 0
