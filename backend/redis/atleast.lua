-- atleast.lua: the function both chunks of shared functions (common.lua,
-- zset.lua) use; the backend puts it before either.

-- atleast makes the key k live at least ms more.
local function atleast(k, ms)
  if redis.call('PTTL', k) < ms then
    redis.call('PEXPIRE', k, ms)
  end
end
