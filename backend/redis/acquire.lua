-- acquire.lua: take the lock if it is free, in one atomic step.
--
-- KEYS[1]  the lock's hash: tok (holder's token), exp (holder's expiry,
--          microseconds of server time), own (the holder's attempt nonce),
--          fence (last token issued), void:<nonce> (one per attempt that
--          was abandoned before it arrived; see abandon.lua)
-- ARGV[1]  lock TTL in milliseconds
-- ARGV[2]  how long the fencing counter outlives the lock, in milliseconds
-- ARGV[3]  this attempt's nonce, random per attempt
-- ARGV[4]  the holder's owner metadata, field 'who' (absent: none)
--
-- Returns the new token (> 0), or 0 if the lock is held (or this attempt
-- was abandoned already).
--
-- The token is max(fence + 1, server time in microseconds): strictly larger
-- than every earlier token while the counter lives, and, once the idle key
-- has expired (or the server restarted without persistence), still larger
-- as long as the server clock has not gone back.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local h = redis.call('HMGET', KEYS[1], 'tok', 'exp', 'fence', 'void:' .. ARGV[3])
if (h[1] and tonumber(h[2]) > now) or h[4] then
  return 0
end
local tok = now
local fence = tonumber(h[3])
if fence and fence >= tok then
  tok = fence + 1
end
local ttl = tonumber(ARGV[1])
-- '%.0f': numbers reach Redis as exact integer strings (doubles hold
-- integers up to 2^53 exactly; microsecond timestamps are about 2^51).
-- (Each string.format costs about 2µs of server time: the token is
-- formatted once, for both fields.)
local s = string.format('%.0f', tok)
redis.call('HSET', KEYS[1], 'tok', s, 'exp', string.format('%.0f', now + ttl * 1000),
  'own', ARGV[3], 'fence', s, 'who', ARGV[4] or '')
redis.call('PEXPIRE', KEYS[1], ttl + tonumber(ARGV[2]))
return tok
