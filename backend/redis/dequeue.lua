-- dequeue.lua: take a waiter out of the key's queue (it gave up). If it
-- was first and the key is free, the next live waiter is woken. If the
-- lock was granted to it (see free in common.lua), the grant is released,
-- as a release would.
--
-- KEYS[1]  the lock's key (see acquire.lua)
-- ARGV[1]  the waiter
-- ARGV[2]  how long the fencing counter outlives the lock, in milliseconds
--
-- Returns 1 if the waiter was queued or held a grant, 0 if not.
if get(KEYS[1]) ~= nil then
  return 0 -- the short layout, or no key: no queue, no grant
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local nowms = math.floor(now / 1000)
local h = redis.call('HMGET', KEYS[1], 'tok', 'exp', 'q', 'own')
if h[4] == '=' .. ARGV[1] and h[1] and tonumber(h[2]) > now then
  free(KEYS[1], now, tonumber(ARGV[2]), h[3])
  return 1
end
if not h[3] then
  return 0
end
local ws, ds = live(h[3], nowms)
local mine = index(ws, ARGV[1])
if mine == 0 then
  return 0
end
table.remove(ws, mine)
table.remove(ds, mine)
if #ws == 0 then
  redis.call('HDEL', KEYS[1], 'q')
  return 1
end
redis.call('HSET', KEYS[1], 'q', (encode(ws, ds, 1, nowms)))
if mine == 1 and not (h[1] and tonumber(h[2]) > now) then
  redis.call('PUBLISH', KEYS[1], ws[1])
end
return 1
