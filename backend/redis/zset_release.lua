-- zset_release.lua: give back what a token holds on a semaphore or a
-- read-write lock, and tell the waiters.
--
-- KEYS[1]  the sorted set (see zset.lua)
-- ARGV[1..] the members the token may hold as (a permit's token; a
--           reader's 'r' or a writer's 'w' and the token)
--
-- Returns 1 if it gave something back, 0 if the token held nothing.
local _, now = clock()
for i = 1, #ARGV do
  if give(KEYS[1], ARGV[i], now) == 1 then
    return 1
  end
end
return 0
