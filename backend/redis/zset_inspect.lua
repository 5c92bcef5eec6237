-- zset_inspect.lua: the holders of a semaphore or a read-write lock, for
-- an operator. Changes nothing.
--
-- KEYS[1]  the sorted set (see zset.lua)
--
-- Returns {member, milliseconds left, ...} of the live holders in the
-- order of their expiry, then the number of waiting writers' marks last.
local _, now = clock()
local r = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf', 'WITHSCORES')
local out, marks = {}, 0
for i = 1, #r, 2 do
  local m = r[i]
  local c = string.sub(m, 1, 1)
  if string.sub(m, 1, 3) == '#m:' then
    marks = marks + 1
  elseif c ~= '#' and c ~= 'v' then
    out[#out + 1] = m
    out[#out + 1] = math.ceil(tonumber(r[i + 1]) - now)
  end
end
out[#out + 1] = marks
return out
