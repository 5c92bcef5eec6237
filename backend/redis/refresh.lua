-- refresh.lua: give the lock a new TTL if ARGV[1] still holds it.
--
-- KEYS[1]  the lock's key (see acquire.lua)
-- ARGV[1]  the holder's token
-- ARGV[2]  the new TTL in milliseconds
-- ARGV[3]  how long the fencing counter outlives the lock, in milliseconds
-- ARGV[4]  the holder's owner metadata, field 'who' (absent: left as it
--          is); a grant's confirmation sets it
--
-- Returns 1 if it extended the lock, 0 if the token does not hold it.
-- v: the key's value, as read.lua read it.
if v ~= nil then
  -- The short layout: the key's own TTL is the holder's.
  if not v or string.sub(v, 1, #ARGV[1] + 1) ~= ARGV[1] .. ' ' then
    return 0
  end
  if ARGV[4] then
    local tok, own = string.match(v, '^(%d+) (%S+)') -- (holder in short.lua)
    redis.call('SET', KEYS[1], tok .. ' ' .. own .. ' ' .. ARGV[4], 'PX', ARGV[2])
  else
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
  end
  return 1
end
-- (common.lua)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local h = redis.call('HMGET', KEYS[1], 'tok', 'exp', 'q')
if h[1] ~= ARGV[1] or tonumber(h[2]) <= now then
  return 0
end
local ttl = tonumber(ARGV[2])
if ARGV[4] then
  redis.call('HSET', KEYS[1], 'exp', string.format('%.0f', now + ttl * 1000), 'who', ARGV[4])
else
  redis.call('HSET', KEYS[1], 'exp', string.format('%.0f', now + ttl * 1000))
end
local life = ttl + tonumber(ARGV[3]) + 1 -- see acquire.lua
if h[3] then
  -- Waiters are queued: the hash keeps at least the time to live that
  -- covers their places, as in acquire.lua.
  life = math.max(life, redis.call('PTTL', KEYS[1]))
end
redis.call('PEXPIRE', KEYS[1], life)
return 1
