-- zset_held.lua: how long until a holder of a semaphore or read-write lock
-- (or a waiting writer's mark) may leave, for a waiter that just started
-- listening: the earliest expiry.
--
-- KEYS[1]  the sorted set (see zset.lua)
--
-- Returns the time in milliseconds, at least 1; 0 if nobody holds.
local _, now = clock()
local r = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
if #r == 0 or r[1] == '#fence' then
  return 0
end
return math.max(tonumber(r[2]) - now, 1)
