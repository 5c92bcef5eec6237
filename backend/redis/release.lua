-- release.lua: free the lock if ARGV[1] still holds it, and tell waiters.
--
-- KEYS[1]  the lock's hash (see acquire.lua)
-- ARGV[1]  the holder's token
-- ARGV[2]  how long the fencing counter outlives the lock, in milliseconds
--
-- Waiters listen on a channel named like the key (KEYS[1]).
--
-- Returns 1 if it released the lock, 0 if the token does not hold it.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local h = redis.call('HMGET', KEYS[1], 'tok', 'exp')
if h[1] ~= ARGV[1] or tonumber(h[2]) <= now then
  return 0
end
local idle = tonumber(ARGV[2])
if idle > 0 then
  redis.call('HDEL', KEYS[1], 'tok', 'exp', 'own', 'who')
  redis.call('PEXPIRE', KEYS[1], idle)
else
  redis.call('DEL', KEYS[1])
end
redis.call('PUBLISH', KEYS[1], 'released')
return 1
