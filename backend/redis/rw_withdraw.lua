-- rw_withdraw.lua: remove a waiting writer's mark (it gave up), and tell
-- the waiters: readers it kept out may go now.
--
-- KEYS[1]  the lock's sorted set (see rw_acquire.lua)
-- ARGV[1]  the writer's name
--
-- Returns 1 if the writer had a mark, 0 if not.
if redis.call('ZREM', KEYS[1], '#m:' .. ARGV[1]) == 0 then
  return 0
end
redis.call('PUBLISH', KEYS[1], 'released')
return 1
