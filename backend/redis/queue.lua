-- queue.lua: put a waiter at the end of the key's queue (or, if it is
-- queued already, keep it where it is), alive for a while, and say how
-- long the holder has left.
--
-- KEYS[1]  the lock's key (see acquire.lua); a string becomes a hash
-- ARGV[1]  the waiter
-- ARGV[2]  how long the waiter stays alive in the queue, in milliseconds
-- ARGV[3]  how long the fencing counter outlives the lock, in milliseconds
-- ARGV[4]  '0' if the waiter takes grants (its place gets seq 0; see
--          common.lua); absent if not
--
-- Returns the holder's time left in milliseconds (rounded up); 0 if the
-- key is free and this waiter is first; -1 if the key is free and another
-- live waiter is first (that one is woken).
local v = get(KEYS[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
if v then
  tohash(KEYS[1], v, now, tonumber(ARGV[3]))
end
local nowms = math.floor(now / 1000)
local h = redis.call('HMGET', KEYS[1], 'tok', 'exp', 'q')
local d = tostring(nowms + tonumber(ARGV[2]))
if ARGV[4] then
  d = d .. '.' .. ARGV[4]
end
local q = renew(h[3], ARGV[1], d, nowms)
redis.call('HSET', KEYS[1], 'q', q)
atleast(KEYS[1], tonumber(ARGV[2]))
if h[1] and tonumber(h[2]) > now then
  return math.ceil((tonumber(h[2]) - now) / 1000)
end
local first = head(q, nowms)
if first == ARGV[1] then
  return 0
end
redis.call('PUBLISH', KEYS[1], first)
return -1
