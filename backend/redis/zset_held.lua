-- zset_held.lua: whether a semaphore has a free permit, for a waiter that
-- just started listening; if not, how long until the earliest permit may
-- be freed by its expiry.
--
-- KEYS[1]  the semaphore's sorted set (see zset.lua)
-- ARGV[1]  its limit
--
-- Returns 0 if fewer than the limit are held; otherwise the time until
-- the earliest permit's expiry in milliseconds, at least 1.
local _, now = clock()
local r = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf', 'WITHSCORES')
local first, n = nil, 0
for i = 1, #r, 2 do
  local c = string.sub(r[i], 1, 1)
  if c ~= '#' and c ~= 'v' then
    n = n + 1
    first = first or tonumber(r[i + 1])
  end
end
if n < tonumber(ARGV[1]) then
  return 0
end
return math.max(first - now, 1)
