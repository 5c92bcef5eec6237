-- inspect.lua: the lock's state, for an operator. Changes nothing.
--
-- KEYS[1]  the lock's key (see acquire.lua)
--
-- Returns {token, remaining milliseconds (rounded up), owner, waiters} if
-- the lock is held, or {'0', 0, '', waiters} if it is free; waiters is the
-- number of live queued waiters. The token is a string: exact for any
-- integer.
local v = get(KEYS[1])
if v ~= nil then
  -- The short layout: no queue.
  if v then
    local tok, _, who = holder(v)
    if tok then
      return {tok, redis.call('PTTL', KEYS[1]), who, 0}
    end
  end
  return {'0', 0, '', 0}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local h = redis.call('HMGET', KEYS[1], 'tok', 'exp', 'who', 'q')
local waiters = #live(h[4], math.floor(now / 1000))
if not h[1] or tonumber(h[2]) <= now then
  return {'0', 0, '', waiters}
end
return {h[1], math.ceil((tonumber(h[2]) - now) / 1000), h[3] or '', waiters}
