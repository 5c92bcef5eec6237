-- multi_release.lua: free every key that a multi-key lock's token still
-- holds, and tell each key's waiters (see free).
--
-- KEYS     the locks' keys (see acquire.lua): a multi-key lock holds
--          hashes only, so a string is another holder's or free
-- ARGV[1]  the token
-- ARGV[2]  how long the fencing counter outlives the lock, in milliseconds
--
-- Returns 1 if the token held every key, 0 otherwise.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local n = 0
for _, k in ipairs(KEYS) do
  if get(k) == nil then
    local h = redis.call('HMGET', k, 'tok', 'exp', 'q')
    if h[1] == ARGV[1] and tonumber(h[2]) > now then
      free(k, now, tonumber(ARGV[2]), h[3])
      n = n + 1
    end
  end
end
if n == #KEYS then
  return 1
end
return 0
