-- multi_acquire.lua: take several mutex keys if all are free, and none
-- otherwise, in one atomic step.
--
-- KEYS     the locks' keys (see acquire.lua); free strings become hashes
-- ARGV[1]  lock TTL in milliseconds
-- ARGV[2]  how long the fencing counter outlives the lock, in milliseconds
-- ARGV[3]  this attempt's nonce, random per attempt
--
-- A key counts as held if a holder's time has not passed or a live waiter
-- is queued for it. Every key gets the same token: max(server time in
-- microseconds, each key's fence + 1). Returns it, or 0 if a key is held
-- or the attempt was abandoned already (a void mark on any key).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local vs = {}
for i, k in ipairs(KEYS) do
  local v = get(k)
  if v and holder(v) then
    return 0
  end
  vs[i] = v
end
for i, k in ipairs(KEYS) do
  if vs[i] then
    tohash(k, vs[i], now, tonumber(ARGV[2]))
  end
end
local tok = now
for _, k in ipairs(KEYS) do
  local h = redis.call('HMGET', k, 'tok', 'exp', 'fence', 'void:' .. ARGV[3], 'q')
  if h[4] or (h[1] and tonumber(h[2]) > now) then
    return 0
  end
  if h[5] and #live(h[5], math.floor(now / 1000)) > 0 then
    return 0
  end
  local fence = tonumber(h[3])
  if fence and fence >= tok then
    tok = fence + 1
  end
end
local s = string.format('%.0f', tok)
local ttl = tonumber(ARGV[1])
local e = string.format('%.0f', now + ttl * 1000)
for _, k in ipairs(KEYS) do
  redis.call('HSET', k, 'tok', s, 'exp', e, 'own', ARGV[3], 'fence', s, 'who', '')
  redis.call('HDEL', k, 'q') -- only dead waiters were left
  redis.call('PEXPIRE', k, ttl + tonumber(ARGV[2]) + 1) -- see acquire.lua
end
return tok
