-- sem_acquire.lua: take one of a semaphore's permits if fewer than the
-- limit are held, in one atomic step.
--
-- KEYS[1]  the semaphore's sorted set (see zset.lua)
-- ARGV[1]  the limit
-- ARGV[2]  the permit's TTL in milliseconds
-- ARGV[3]  the permit's token: random, drawn by the client per attempt
--
-- Returns 1 if the permit was taken, 0 if the limit is held or this
-- attempt was abandoned already (its token is void).
local _, now = clock()
local k = KEYS[1]
expire(k, now)
redis.call('ZREMRANGEBYSCORE', k, -now, '(0') -- void marks past their time
if redis.call('ZSCORE', k, ARGV[3]) then
  return 0
end
if redis.call('ZCOUNT', k, '(0', '+inf') >= tonumber(ARGV[1]) then
  return 0
end
local ttl = tonumber(ARGV[2])
redis.call('ZADD', k, expiry(now, ttl), ARGV[3])
atleast(k, ttl + 1) -- the set outlives the permit (see expiry)
return 1
