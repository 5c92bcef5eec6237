-- force.lua: free the lock whoever holds it (an operator's action), keep
-- the fencing counter, and tell waiters.
--
-- KEYS[1]  the lock's hash (see acquire.lua)
-- ARGV[1]  how long the fencing counter outlives the lock, in milliseconds
--
-- Returns 1 if a lock was held, 0 if the key was free.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local h = redis.call('HMGET', KEYS[1], 'tok', 'exp')
if not h[1] or tonumber(h[2]) <= now then
  return 0
end
local idle = tonumber(ARGV[1])
if idle > 0 then
  redis.call('HDEL', KEYS[1], 'tok', 'exp', 'own', 'who')
  redis.call('PEXPIRE', KEYS[1], idle)
else
  redis.call('DEL', KEYS[1])
end
redis.call('PUBLISH', KEYS[1], 'released')
return 1
