-- rw_join.lua: a writer that waits sets its mark, which keeps new readers
-- out for its keep time, and learns how long until a holder may leave.
--
-- KEYS[1]  the lock's sorted set (see rw_acquire.lua)
-- ARGV[1]  the writer's name
-- ARGV[2]  its keep time in milliseconds
--
-- Returns 0 if nobody holds the lock (the writer may take it now);
-- otherwise the time until the earliest holder's expiry, in milliseconds,
-- at least 1.
local _, now = clock()
local k = KEYS[1]
expire(k, now)
local keep = tonumber(ARGV[2])
redis.call('ZADD', k, 'GT', now + keep, '#m:' .. ARGV[1])
atleast(k, keep)
local r = redis.call('ZRANGEBYSCORE', k, '(' .. now, '+inf', 'WITHSCORES')
for i = 1, #r, 2 do
  local c = string.sub(r[i], 1, 1)
  if c == 'r' or c == 'w' then
    return math.max(tonumber(r[i + 1]) - now, 1)
  end
end
return 0
