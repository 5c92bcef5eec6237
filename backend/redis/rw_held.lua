-- rw_held.lua: whether a read-write lock can be taken now, for a waiter
-- that just started listening: 0 if nobody holds it, or if no writer
-- holds it and no waiting writer's mark is alive (a reader may enter);
-- otherwise how long until the earliest holder's expiry.
--
-- KEYS[1]  the lock's sorted set (see rw_acquire.lua)
--
-- Returns the time in milliseconds, at least 1; 0 if the lock can be
-- taken.
local _, now = clock()
local r = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf', 'WITHSCORES')
local first, writer, mark = nil, false, false
for i = 1, #r, 2 do
  local c = string.sub(r[i], 1, 1)
  if c == 'r' or c == 'w' then
    first = first or tonumber(r[i + 1])
    writer = writer or c == 'w'
  elseif string.sub(r[i], 1, 3) == '#m:' then
    mark = true
  end
end
if not first or not (writer or mark) then
  return 0
end
return math.max(first - now, 1)
