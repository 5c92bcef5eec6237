-- held.lua: how long the lock stays held, for a waiter that just started
-- listening for its release.
--
-- KEYS[1]  the lock's key (see acquire.lua)
--
-- Returns the remaining time in milliseconds, rounded up; 0 if free.
local v = get(KEYS[1])
if v ~= nil then
  if v and holder(v) then
    -- (+1: the key lives through the millisecond it expires in.)
    return redis.call('PTTL', KEYS[1]) + 1
  end
  return 0
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local h = redis.call('HMGET', KEYS[1], 'tok', 'exp')
if not h[1] then
  return 0
end
local left = tonumber(h[2]) - now
if left <= 0 then
  return 0
end
return math.ceil(left / 1000)
