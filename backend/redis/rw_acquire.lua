-- rw_acquire.lua: take a read-write lock for reading or writing, in one
-- atomic step.
--
-- KEYS[1]  the lock's sorted set (see zset.lua): readers
--          'r<token>:<nonce>' and the writer 'w<token>:<nonce>' scored by
--          expiry (ms), waiting writers' marks '#m:<writer>' scored by
--          the time until which they keep readers out (ms), '#fence',
--          void marks 'v<nonce>'
-- ARGV[1]  'r' to read, 'w' to write
-- ARGV[2]  the TTL in milliseconds
-- ARGV[3]  a waiting writer's keep time in milliseconds: how long its
--          mark keeps new readers out after a refusal
-- ARGV[4]  how long the fencing counter outlives the holders, in
--          milliseconds
-- ARGV[5]  this attempt's nonce, random per attempt, kept in the
--          holder's name so that a clean-up that never saw the reply finds
--          what it took (rw_abandon.lua); a void mark 'v<nonce>' (scored by
--          minus its end) makes the attempt take nothing
-- ARGV[6]  a writer that waits: its name ('' for an attempt that will not
--          wait, which leaves no mark)
--
-- A reader is refused while a writer holds or a waiting writer's mark is
-- alive; a writer is refused while anybody holds, and then, if it waits,
-- sets or renews its mark; its grant removes it. Returns the token (> 0),
-- or 0 if refused.
--
-- The token is max(fence + 1, server time in microseconds), as a mutex's:
-- strictly larger than every earlier token of the key while the counter
-- lives, and after it expired as long as the server clock has not gone
-- back.
local us, now = clock()
local k = KEYS[1]
expire(k, now)
redis.call('ZREMRANGEBYSCORE', k, -now, '(0') -- void marks past their time
if redis.call('ZSCORE', k, 'v' .. ARGV[5]) then
  return 0
end
local writer, readers, mark = false, 0, false
for _, m in ipairs(redis.call('ZRANGE', k, 0, -1)) do
  local c = string.sub(m, 1, 1)
  if c == 'w' then
    writer = true
  elseif c == 'r' then
    readers = readers + 1
  elseif string.sub(m, 1, 3) == '#m:' then
    mark = true -- expire() dropped the marks past their time
  end
end
if ARGV[1] == 'r' then
  if writer or mark then
    return 0
  end
elseif writer or readers > 0 then
  if ARGV[6] ~= '' then
    local keep = tonumber(ARGV[3])
    redis.call('ZADD', k, 'GT', now + keep, '#m:' .. ARGV[6])
    atleast(k, keep)
  end
  return 0
end
local tok = us
local fence = tonumber(redis.call('ZSCORE', k, '#fence'))
if fence and fence >= tok then
  tok = fence + 1
end
local s = string.format('%.0f', tok)
local ttl = tonumber(ARGV[2])
redis.call('ZADD', k, tok, '#fence', expiry(now, ttl), ARGV[1] .. s .. ':' .. ARGV[5])
if ARGV[1] == 'w' and ARGV[6] ~= '' then
  redis.call('ZREM', k, '#m:' .. ARGV[6])
end
atleast(k, ttl + 1 + tonumber(ARGV[4])) -- see expiry
return tok
