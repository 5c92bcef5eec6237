-- sem_release.lua: give back a semaphore's permit, and tell the waiters.
--
-- KEYS[1]  the semaphore's sorted set (see zset.lua)
-- ARGV[1]  the permit's token
--
-- Returns 1 if it gave the permit back, 0 if the token held none.
local _, now = clock()
return give(KEYS[1], ARGV[1], now)
