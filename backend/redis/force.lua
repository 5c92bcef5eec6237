-- force.lua: free the lock whoever holds it (an operator's action), keep
-- the fencing counter, and tell waiters (see free).
--
-- KEYS[1]  the lock's key (see acquire.lua)
-- ARGV[1]  how long the fencing counter outlives the lock, in milliseconds
--
-- Returns 1 if a lock was held, 0 if the key was free.
local v = get(KEYS[1])
if v ~= nil then
  local tok = v and holder(v)
  if tok then
    unhold(KEYS[1], tok, tonumber(ARGV[1]))
    return 1
  end
  return 0
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local h = redis.call('HMGET', KEYS[1], 'tok', 'exp', 'q')
if not h[1] or tonumber(h[2]) <= now then
  return 0
end
free(KEYS[1], now, tonumber(ARGV[1]), h[3])
return 1
