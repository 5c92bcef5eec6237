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

-- free frees the lock of the hash k (its holder's fields) and tells the
-- waiters: the first live waiter of the queue q, if there is one, and
-- then the hash lives as long as the queue's waiters or the fencing
-- counter (idle ms), whichever is longer; otherwise every waiter, and the
-- hash lives idle ms (at 0 it is deleted).
local function free(k, now, idle, q)
  if q then
    local nowms = math.floor(now / 1000)
    local ws, ds = live(q, nowms)
    if #ws > 0 then
      local field, far = encode(ws, ds, 1, nowms)
      redis.call('HDEL', k, 'tok', 'exp', 'own', 'who')
      redis.call('HSET', k, 'q', field)
      redis.call('PEXPIRE', k, math.max(idle, far))
      redis.call('PUBLISH', k, ws[1])
      return
    end
  end
  if idle > 0 then
    redis.call('HDEL', k, 'tok', 'exp', 'own', 'who', 'q')
    redis.call('PEXPIRE', k, idle)
  else
    redis.call('DEL', k)
  end
  redis.call('PUBLISH', k, 'released')
end
