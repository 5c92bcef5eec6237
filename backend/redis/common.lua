-- common.lua: functions that several scripts share; the backend puts this
-- chunk before each of them.
--
-- The waiters' queue is the field q of the lock's hash: "w=deadline"
-- entries in arrival order, separated by spaces, each deadline in
-- milliseconds of server time (until then the waiter w is alive).

-- live returns the queue's live waiters and their deadlines, in order.
local function live(q, nowms)
  local ws, ds = {}, {}
  for e, d in string.gmatch(q or '', '(%w+)=(%d+)') do
    if tonumber(d) > nowms then
      ws[#ws + 1], ds[#ds + 1] = e, d
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
    far = math.max(far, tonumber(ds[j]) - nowms)
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

-- head returns the first live waiter of the queue q, its deadline, and
-- the queue from that waiter on (dead entries before it dropped); nil if
-- no waiter is alive.
local function head(q, nowms)
  local from = 1
  while true do
    local s, e, w, d = string.find(q, '(%w+)=(%d+)', from)
    if not s then
      return nil
    end
    if tonumber(d) > nowms then
      return w, d, string.sub(q, s)
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
  local ds, de = string.find(q, '%d+', e + 1)
  local old = tonumber(string.sub(q, ds, de))
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
-- waiter. The hash keeps its time to live: every script that grants or
-- extends a lock sets it to at least the holder's time left plus idle
-- (and no script shortens it below that while the holder holds), so the
-- fencing counter outlives the lock by idle ms at least, and with a
-- queue the time to live also covers the waiters' places. At idle 0 the
-- hash is deleted unless waiters are queued.
local function free(k, now, idle, q)
  if q then
    local w, _, rest = head(q, math.floor(now / 1000))
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
