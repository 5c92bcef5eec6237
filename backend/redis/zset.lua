-- zset.lua: functions shared by the semaphore and read-write scripts; the
-- backend puts this chunk before each of them.
--
-- A semaphore or a read-write lock is a sorted set (so that it cannot be
-- mistaken for a mutex's hash: a key used as both fails with WRONGTYPE).
-- Its holders are members scored by their expiry, in milliseconds of
-- server time. Other members: a semaphore's void marks (an abandoned
-- attempt's token, scored by minus the time until which the mark is kept),
-- and a read-write lock's '#fence' (the last token, microseconds: far
-- above any expiry), waiting writers' marks '#m:<writer>' (readers are
-- refused until their score) and void marks (see rw_acquire.lua).

-- nowms reads the server's clock: microseconds and milliseconds.
local function clock()
  local t = redis.call('TIME')
  local us = tonumber(t[1]) * 1000000 + tonumber(t[2])
  return us, math.floor(us / 1000)
end

-- expiry is the score of a holder (or a void mark) that lives ttl ms from
-- now (ms, rounded down from the server's microseconds): one more than now
-- + ttl, so that it lives at least ttl after the moment the script ran.
-- expire drops a holder once now reaches its score; a score of now + ttl
-- would drop it up to 1ms early, while each holder counts its TTL from
-- just before its request, and a writer could be granted during a
-- reader's last millisecond. (Redis's own key expiry, PEXPIRE, rounds
-- the same way: a key lives through the millisecond it expires in.)
local function expiry(now, ttl)
  return now + ttl + 1
end

-- expire drops the holders (and a read-write lock's mark) whose time has
-- passed at now (ms).
local function expire(k, now)
  redis.call('ZREMRANGEBYSCORE', k, 0, now)
end

-- give drops holder m if it is live at now, and tells the waiters.
-- Returns 1 if it did.
local function give(k, m, now)
  local s = redis.call('ZSCORE', k, m)
  if not s or tonumber(s) <= now then
    return 0
  end
  redis.call('ZREM', k, m)
  redis.call('PUBLISH', k, 'released')
  return 1
end

-- renew gives holder m, if live at now, ttl ms from now. Returns 1 if it
-- did.
local function renew(k, m, now, ttl)
  local s = redis.call('ZSCORE', k, m)
  if not s or tonumber(s) <= now then
    return 0
  end
  redis.call('ZADD', k, 'XX', expiry(now, ttl), m)
  return 1
end

-- holder finds the live read or write holder of a read-write lock whose
-- name's token (field 1) or nonce (field 2) is v: O(holders).
local function holder(k, now, field, v)
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', k, '(' .. now, '+inf')) do
    local c = string.sub(m, 1, 1)
    if c == 'r' or c == 'w' then
      local tok, nonce = string.match(m, '^[rw](%d+):(%w+)$')
      if (field == 1 and tok == v) or (field == 2 and nonce == v) then
        return m
      end
    end
  end
  return nil
end
