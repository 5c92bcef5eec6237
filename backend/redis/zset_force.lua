-- zset_force.lua: free a semaphore or a read-write lock whoever holds it
-- (an operator's action), keep its fencing counter and its waiting
-- writers' marks, and tell the waiters.
--
-- KEYS[1]  the sorted set (see zset.lua)
--
-- Returns how many holders it freed.
local _, now = clock()
local k = KEYS[1]
local n = 0
for _, m in ipairs(redis.call('ZRANGEBYSCORE', k, '(' .. now, '+inf')) do
  local c = string.sub(m, 1, 1)
  if c ~= '#' and c ~= 'v' then
    redis.call('ZREM', k, m)
    n = n + 1
  end
end
if n > 0 then
  redis.call('PUBLISH', k, 'released')
end
return n
