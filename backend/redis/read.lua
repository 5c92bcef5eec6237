-- read.lua: the first step of the hot scripts (acquire.lua, release.lua,
-- refresh.lua), before their own text: v is the value of the key KEYS[1]
-- in the short layout, false if there is no key, or nil if it is a hash
-- (any other error is raised). It is get in short.lua, written out: the
-- hot paths run before short.lua's functions are defined.
local v = redis.pcall('GET', KEYS[1])
if type(v) == 'table' then
  if string.sub(v.err or '', 1, 9) ~= 'WRONGTYPE' then
    error(v)
  end
  v = nil -- a hash
end
