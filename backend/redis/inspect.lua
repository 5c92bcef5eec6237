-- inspect.lua: the lock's state, for an operator. Changes nothing.
--
-- KEYS[1]  the lock's hash (see acquire.lua)
--
-- Returns {token, remaining milliseconds (rounded up), owner} if the lock
-- is held, or {'0', 0, ''} if it is free. The token is a string: exact for
-- any integer.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local h = redis.call('HMGET', KEYS[1], 'tok', 'exp', 'who')
if not h[1] or tonumber(h[2]) <= now then
  return {'0', 0, ''}
end
return {h[1], math.ceil((tonumber(h[2]) - now) / 1000), h[3] or ''}
