-- sem_refresh.lua: give a semaphore's permit a new TTL.
--
-- KEYS[1]  the semaphore's sorted set (see zset.lua)
-- ARGV[1]  the new TTL in milliseconds
-- ARGV[2]  the permit's token
--
-- Returns 1 if it extended, 0 if the token held no permit.
local _, now = clock()
local ttl = tonumber(ARGV[1])
if renew(KEYS[1], ARGV[2], now, ttl) == 1 then
  atleast(KEYS[1], ttl + 1)
  return 1
end
return 0
