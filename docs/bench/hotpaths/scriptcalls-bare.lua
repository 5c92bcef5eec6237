local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local h = redis.call('HMGET', KEYS[1], 'tok', 'exp', 'fence', 'void:' .. ARGV[3], 'q', 'own')
local s = string.format('%.0f', now)
redis.call('HSET', KEYS[1], 'tok', s, 'exp', string.format('%.0f', now + 10000000), 'own', ARGV[3], 'fence', s, 'who', '')
redis.call('PEXPIRE', KEYS[1], 10001)
return now
