-- sem_abandon.lua: undo a permit attempt whose reply never came: give the
-- permit back if it took one, or else mark its token void, so that the
-- attempt takes nothing if it is still on its way.
--
-- KEYS[1]  the semaphore's sorted set (see zset.lua)
-- ARGV[1]  the attempt's token
-- ARGV[2]  the attempt's TTL in milliseconds: how long the mark lasts
--
-- Returns 1 if it gave a permit back, 0 if it marked the token void.
local _, now = clock()
local k = KEYS[1]
if give(k, ARGV[1], now) == 1 then
  return 1
end
local ttl = tonumber(ARGV[2])
redis.call('ZADD', k, -expiry(now, ttl), ARGV[1])
atleast(k, ttl + 1)
return 0
