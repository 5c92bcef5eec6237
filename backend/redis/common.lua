-- common.lua: functions that the mutexes' scripts share for the full
-- layout (a hash; see short.lua); the backend puts this chunk after
-- short.lua, before each script or where the script has the line
-- '-- (common.lua)' (see mutexScript in scripts.go).

-- tohash rewrites the key k, whose value v is in the short layout, as the
-- hash of the full layout, with the same holder, owner and counter, so
-- that the full layout's logic applies to it. now: the server's clock
-- (µs); idle: how long the counter outlives the holder (ms). It deletes
-- the key before it writes the hash: on the primary a Cluster slot
-- migrates from, that write would be refused and the script stop halfway
-- (scripts are not rolled back), so a Locker on a Cluster keeps hashes
-- only and never gets here.
local function tohash(k, v, now, idle)
  local p = math.max(redis.call('PTTL', k), 1)
  redis.call('DEL', k)
  local tok, own, who = holder(v)
  if tok then
    -- (p + 1: the key lived through the millisecond it expired in, so
    -- the holder keeps every microsecond it had.)
    redis.call('HSET', k, 'tok', tok, 'exp', string.format('%.0f', now + (p + 1) * 1000),
      'own', own, 'fence', tok, 'who', who)
    redis.call('PEXPIRE', k, p + 1 + idle + 1)
  else
    redis.call('HSET', k, 'fence', string.sub(v, 2))
    redis.call('PEXPIRE', k, p)
  end
end

-- The waiters' queue is the field q of the lock's hash: "w=deadline"
-- entries in arrival order, separated by spaces, each deadline in
-- milliseconds of server time (until then the waiter w is alive). A
-- waiter that takes grants (see free) has "w=deadline.seq": seq is the
-- number of its request that last set the deadline (0: its joining).

-- live returns the queue's live waiters and their deadlines, in order.
-- (A deadline keeps its seq, if it has one.)
local function live(q, nowms)
  local ws, ds = {}, {}
  for e, d, seq in string.gmatch(q or '', '(%w+)=(%d+)([%.%d]*)') do
    if tonumber(d) > nowms then
      ws[#ws + 1], ds[#ds + 1] = e, d .. seq
    end
  end
  return ws, ds
end

-- index is the place of waiter w in ws, 0 if it is not there.
local function index(ws, w)
  for i = 1, #ws do
    if ws[i] == w then
      return i
    end
  end
  return 0
end

-- encode is the queue's field for the waiters from index i on, and how
-- long the last of them stays alive (ms from nowms).
local function encode(ws, ds, i, nowms)
  local es, far = {}, 0
  for j = i, #ws do
    es[#es + 1] = ws[j] .. '=' .. ds[j]
    far = math.max(far, tonumber(string.match(ds[j], '%d+')) - nowms)
  end
  return table.concat(es, ' '), far
end

-- The hot paths touch the queue's string without parsing all of it (a
-- long queue would make every handoff cost its length): the first live
-- waiter is found from the front, and a waiter's own entry by a plain
-- search. Dead entries further back are dropped when they reach the
-- front, or by the paths that parse the whole queue. The hash outlives
-- every place in it: each place is added or renewed for keep ms with
-- the hash's time to live raised to at least keep, and the hot paths
-- never shorten it while waiters are queued.

-- head returns the first live waiter of the queue q, its deadline, the
-- queue from that waiter on (dead entries before it dropped), and its
-- seq if it takes grants; nil if no waiter is alive.
local function head(q, nowms)
  local from = 1
  while true do
    local s, e, w, d, seq = string.find(q, '(%w+)=(%d+)%.?(%d*)', from)
    if not s then
      return nil
    end
    if tonumber(d) > nowms then
      if seq == '' then
        seq = nil
      end
      return w, d, string.sub(q, s), seq
    end
    from = e + 1
  end
end

-- renew sets waiter w's deadline in the queue q to d if w's place is
-- alive, or else puts w at the end (a place that expired is lost), and
-- returns the new queue. With fresh, a live place whose deadline is at
-- least fresh is left as it is, and q itself returned: a waiter retries
-- several times per keep, and only a renewal that is due rewrites the
-- queue.
local function renew(q, w, d, nowms, fresh)
  if not q or q == '' then
    return w .. '=' .. d
  end
  local s, e
  if string.sub(q, 1, #w + 1) == w .. '=' then
    s, e = 1, #w + 1
  else
    s, e = string.find(q, ' ' .. w .. '=', 1, true)
  end
  if not s then
    return q .. ' ' .. w .. '=' .. d
  end
  local _, de, old = string.find(q, '^(%d+)[%.%d]*', e + 1)
  old = tonumber(old)
  if old > nowms then
    if fresh and old >= fresh then
      return q
    end
    return string.sub(q, 1, e) .. d .. string.sub(q, de + 1)
  end
  local rest = string.sub(q, de + 2)
  if s > 1 then
    rest = string.sub(q, 1, s - 1) .. (rest ~= '' and ' ' .. rest or '')
  end
  if rest == '' then
    return w .. '=' .. d
  end
  return rest .. ' ' .. w .. '=' .. d
end

-- free frees the lock of the hash k (its holder's fields), which a
-- holder still holds (its expiry is after now), and tells the waiters:
-- the first live waiter of the queue q, if there is one; otherwise every
-- waiter.
--
-- A first waiter that takes grants gets the lock in the same step: a new
-- token, as acquire.lua's, that lasts until the waiter's place would
-- have ended (keep from the request that last renewed it, by the
-- server's clock), with 'own' set to '=' and the waiter; the message tells it
-- the token and the seq of its place ("w token seq"). It lasts no longer
-- than the place: a waiter that died holds the key no longer than it
-- would have as a waiter.
--
-- The hash keeps its time to live: every script that grants or
-- extends a lock sets it to at least the holder's time left plus idle
-- (and no script shortens it below that while the holder holds), so the
-- fencing counter outlives the lock by idle ms at least, and with a
-- queue the time to live also covers the waiters' places. At idle 0 the
-- hash is deleted unless waiters are queued.
local function free(k, now, idle, q)
  if q then
    local nowms = math.floor(now / 1000)
    local w, d, rest, seq = head(q, nowms)
    if w and seq then
      local after = ''
      local _, e = string.find(rest, ' ', 1, true)
      if e then
        after = string.sub(rest, e + 1)
      end
      local tok = now
      local fence = tonumber(redis.call('HMGET', k, 'fence')[1])
      if fence and fence >= tok then
        tok = fence + 1
      end
      local s = string.format('%.0f', tok)
      -- (d + 1: the place's deadline was counted from its request's
      -- TIME rounded down to the millisecond; the grant lasts keep from
      -- the request at least.)
      redis.call('HSET', k, 'tok', s, 'exp', string.format('%.0f', (tonumber(d) + 1) * 1000), 'own', '=' .. w, 'fence', s, 'who', '')
      if after == '' then
        redis.call('HDEL', k, 'q')
      else
        redis.call('HSET', k, 'q', after)
      end
      atleast(k, tonumber(d) + 1 - nowms + idle + 1)
      redis.call('PUBLISH', k, w .. ' ' .. s .. ' ' .. seq)
      return
    end
    if w then
      redis.call('HDEL', k, 'tok', 'exp', 'own', 'who')
      if rest ~= q then
        redis.call('HSET', k, 'q', rest)
      end
      redis.call('PUBLISH', k, w)
      return
    end
  end
  if idle > 0 then
    redis.call('HDEL', k, 'tok', 'exp', 'own', 'who', 'q')
  else
    redis.call('DEL', k)
  end
  redis.call('PUBLISH', k, 'released')
end
