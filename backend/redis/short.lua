-- short.lua: the short layout's functions, which the mutexes' scripts
-- share; the backend puts this chunk before common.lua (see
-- mutexScript in scripts.go). The hot paths of acquire.lua, release.lua
-- and refresh.lua come before both, with get written out (read.lua) and
-- unhold inline.
--
-- A mutex's key has one of two layouts. While nobody waits for it, it is
-- a string (the short layout): '<token> <nonce> <owner>' while held, with
-- the holder's TTL as the key's own (PX, so Redis's own expiry frees it),
-- and 'f<token>', the fencing counter alone, for the fence idle time after
-- a release. Its scripts then make two calls where a hash needs four. It
-- becomes a hash (the full layout: see acquire.lua) when a waiter queues
-- or an attempt is marked void, or always on a Locker that keeps hashes
-- only; a hash stays one until it expires. A lock held in the short layout
-- that expires takes its counter with it: the next token comes from the
-- server's clock (see acquire.lua).

-- get reads the key k in the short layout: its value, false if there is
-- no key, or nil if k is a hash (any other error is raised).
local function get(k)
  local v = redis.pcall('GET', k)
  if type(v) == 'table' then
    if string.sub(v.err or '', 1, 9) == 'WRONGTYPE' then
      return nil
    end
    error(v)
  end
  return v
end

-- holder parses a held value of the short layout: the token, the nonce
-- and the owner; nil for a released one ('f<token>').
local function holder(v)
  return string.match(v, '^(%d+) (%S+) (.*)$')
end

-- unhold frees the key k held in the short layout by token tok, keeps its
-- counter for idle ms, and tells every listener (there is no queue).
local function unhold(k, tok, idle)
  if idle > 0 then
    redis.call('SET', k, 'f' .. tok, 'PX', idle)
  else
    redis.call('DEL', k)
  end
  redis.call('PUBLISH', k, 'released')
end
