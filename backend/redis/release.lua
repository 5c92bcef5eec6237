-- release.lua: free the lock if ARGV[1] still holds it, and tell waiters.
--
-- KEYS[1]  the lock's key (see acquire.lua)
-- ARGV[1]  the holder's token
-- ARGV[2]  how long the fencing counter outlives the lock, in milliseconds
--
-- Waiters listen on a channel named like the key (KEYS[1]). With waiters
-- queued, the message names the first live one, and only it wakes;
-- otherwise it is 'released', and every waiter wakes (see free).
--
-- Returns 1 if it released the lock, 0 if the token does not hold it.
-- v: the key's value, as read.lua read it.
if v ~= nil then
  -- The short layout: the key is the holder's while it lives (unhold in
  -- short.lua, inline).
  if v and string.sub(v, 1, #ARGV[1] + 1) == ARGV[1] .. ' ' then
    if ARGV[2] ~= '0' then
      redis.call('SET', KEYS[1], 'f' .. ARGV[1], 'PX', ARGV[2])
    else
      redis.call('DEL', KEYS[1])
    end
    redis.call('PUBLISH', KEYS[1], 'released')
    return 1
  end
  return 0
end
-- (common.lua)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local h = redis.call('HMGET', KEYS[1], 'tok', 'exp', 'q')
if h[1] ~= ARGV[1] or tonumber(h[2]) <= now then
  return 0
end
free(KEYS[1], now, tonumber(ARGV[2]), h[3])
return 1
