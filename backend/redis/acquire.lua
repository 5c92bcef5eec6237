-- acquire.lua: take the lock if it is free and no live waiter is queued
-- ahead, in one atomic step.
--
-- KEYS[1]  the lock's key: a string (the short layout, see short.lua)
--          or the hash of the full layout: tok (holder's token), exp
--          (holder's expiry, microseconds of server time), own (the
--          holder's attempt nonce), fence (last token issued), who (owner
--          metadata), void:<nonce> (one per attempt that was abandoned
--          before it arrived; see abandon.lua), q (the waiters' queue:
--          "w=deadline" entries, in arrival order, deadline in
--          milliseconds of server time)
-- ARGV[1]  lock TTL in milliseconds
-- ARGV[2]  how long the fencing counter outlives the lock, in milliseconds
-- ARGV[3]  this attempt's nonce, random per attempt
-- ARGV[4]  the holder's owner metadata, field 'who' (absent: none)
-- ARGV[5]  the queued waiter making this attempt (absent: not queued)
-- ARGV[6]  with ARGV[5]: how long the waiter stays alive in the queue, ms
-- ARGV[7]  with ARGV[5]: the attempt's seq, if the waiter takes grants
--          (absent: it does not); kept with the place it renews
--
-- Returns the new token (> 0), or 0 if the lock is held, a live waiter is
-- queued ahead, or this attempt was abandoned already. A waiter that
-- finds the lock granted to it (see free in common.lua) takes the grant:
-- its token, with the TTL and owner of this attempt ('own' stays the
-- grant's, so that no abandon can free it: the waiter may be using the
-- grant from the message already). A queued waiter
-- that is refused stays queued (or joins at the end), alive for two
-- thirds of ARGV[6] more at least; one that gets the lock leaves the
-- queue. A refusal of a free key
-- wakes the queue's head. Each costs O(1) in the queue's length but for
-- string copies: no path here parses the whole queue (see common.lua).
--
-- A free key in the short layout (see short.lua), or no key, is taken in
-- two calls: its value is read, and the holder written with the TTL as
-- the key's own. Unless the Locker keeps hashes only (hashonly, which the
-- backend defines before this chunk): then, as for a held key in the
-- short layout that a queued waiter tries, the key becomes a hash first.
-- That path comes before the shared functions (short.lua, common.lua)
-- are defined, which would cost it more than its own logic.
--
-- The token is strictly larger than every earlier token while the counter
-- lives: fence + 1 in the short layout, max(fence + 1, server time in
-- microseconds) in a hash. With no counter (no key: the idle key expired,
-- a lock in the short layout expired, or the server restarted without
-- persistence), it is the server time in microseconds: still larger as
-- long as the server clock has not gone back. (A token is never larger
-- than the server time at its grant unless the clock went back: tokens
-- grow by 1 per grant of a key, and a grant costs far more than 1µs.)
-- v: the key's value, as read.lua read it.
if v ~= nil then
  local held = v and string.byte(v) ~= 102 -- not 'f<token>'
  if not held and not hashonly then
    local tok
    if v then
      tok = tonumber(string.sub(v, 2)) + 1
    else
      local t = redis.call('TIME')
      tok = tonumber(t[1]) * 1000000 + tonumber(t[2])
    end
    local s = string.format('%.0f', tok)
    redis.call('SET', KEYS[1], s .. ' ' .. ARGV[3] .. ' ' .. (ARGV[4] or ''), 'PX', ARGV[1])
    return tok
  end
  if held and not ARGV[5] then
    return 0
  end
end
-- (common.lua)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
if v then
  tohash(KEYS[1], v, now, tonumber(ARGV[2]))
end
local h = redis.call('HMGET', KEYS[1], 'tok', 'exp', 'fence', 'void:' .. ARGV[3], 'q', 'own')
if h[4] then
  return 0
end
local held = h[1] and tonumber(h[2]) > now
local w = ARGV[5]
local ttl = tonumber(ARGV[1])
local q -- the queue to store with a grant; nil: leave it as it is
-- A refused waiter's place is renewed once a third of its keep has
-- passed (each renewal rewrites the queue); it retries at least three
-- times per keep, so the place never comes within a retry of its end.
local keep = tonumber(ARGV[6])
local mark = ''
if ARGV[7] then
  mark = '.' .. ARGV[7]
end
if held then
  if w and h[6] == '=' .. w then
    -- This waiter's grant: it takes it.
    redis.call('HSET', KEYS[1], 'exp', string.format('%.0f', now + ttl * 1000), 'who', ARGV[4] or '')
    atleast(KEYS[1], ttl + tonumber(ARGV[2]) + 1)
    return tonumber(h[1])
  end
  -- Refused: a queued waiter's place is renewed (or added at the end).
  if w then
    local nowms = math.floor(now / 1000)
    local q = renew(h[5], w, (nowms + keep) .. mark, nowms, nowms + keep - math.floor(keep / 3))
    if q ~= h[5] then
      redis.call('HSET', KEYS[1], 'q', q)
      atleast(KEYS[1], keep)
    end
  end
  return 0
end
if h[5] then
  local nowms = math.floor(now / 1000)
  local first, _, rest = head(h[5], nowms)
  if first and first ~= w then
    -- Another waiter's turn: this one's place is renewed, and the first
    -- is woken (it may have missed its turn).
    if w then
      local r = renew(rest, w, (nowms + keep) .. mark, nowms, nowms + keep - math.floor(keep / 3))
      if r ~= rest then
        rest = r
        atleast(KEYS[1], keep)
      end
    end
    if rest ~= h[5] then
      redis.call('HSET', KEYS[1], 'q', rest)
    end
    redis.call('PUBLISH', KEYS[1], first)
    return 0
  end
  -- Granted: the first live waiter, if any, is this one, and it leaves.
  q = ''
  if first then
    local _, e = string.find(rest, ' ', 1, true)
    if e then
      q = string.sub(rest, e + 1)
    end
  end
end
local tok = now
local fence = tonumber(h[3])
if fence and fence >= tok then
  tok = fence + 1
end
-- '%.0f': numbers reach Redis as exact integer strings (doubles hold
-- integers up to 2^53 exactly; microsecond timestamps are about 2^51).
-- (Each string.format costs about 2µs of server time: the token is
-- formatted once, for both fields.)
local s = string.format('%.0f', tok)
redis.call('HSET', KEYS[1], 'tok', s, 'exp', string.format('%.0f', now + ttl * 1000),
  'own', ARGV[3], 'fence', s, 'who', ARGV[4] or '')
-- (+1: the key's time to live counts from the script's start, to the
-- millisecond, and 'exp' from its TIME call: the key outlives 'exp' even
-- with no fencing counter kept, ARGV[2] 0.)
local life = ttl + tonumber(ARGV[2]) + 1
if q == '' then
  redis.call('HDEL', KEYS[1], 'q')
elseif q then
  -- Waiters stay queued: the hash keeps at least the time to live that
  -- covers their places.
  redis.call('HSET', KEYS[1], 'q', q)
  life = math.max(life, redis.call('PTTL', KEYS[1]))
end
redis.call('PEXPIRE', KEYS[1], life)
return tok
