-- zset_held.lua: how long until a holder of a semaphore or read-write lock
-- may leave, for a waiter that just started listening: the earliest
-- expiry. A read-write lock's marks and '#fence' are not holders (a
-- waiting reader that a mark keeps out is woken, tries, and is refused).
--
-- KEYS[1]  the sorted set (see zset.lua)
--
-- Returns the time in milliseconds, at least 1; 0 if nobody holds.
local _, now = clock()
local r = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf', 'WITHSCORES')
for i = 1, #r, 2 do
  if string.sub(r[i], 1, 1) ~= '#' then
    return math.max(tonumber(r[i + 1]) - now, 1)
  end
end
return 0
