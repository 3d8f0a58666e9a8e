-- Takes back one call from a window's count that still exists and is above zero; 1 if so.
local used = tonumber(redis.call('GET', KEYS[1]))
if used and used > 0 then
  redis.call('DECR', KEYS[1])
  return 1
end
return 0
