-- Counts one call in a quota window, atomic in Redis.
-- KEYS[1]: the window's count. ARGV: limit, charge (0/1), expiry (epoch ms), seed (the count
-- the store holds for the window, so a Redis that lost its data resumes from it).
local used = tonumber(redis.call('GET', KEYS[1]))
if not used then
  used = tonumber(ARGV[4])
  redis.call('SET', KEYS[1], ARGV[4], 'PXAT', ARGV[3])
end
if used >= tonumber(ARGV[1]) then return 0 end
if ARGV[2] == '1' then redis.call('INCR', KEYS[1]) end
return 1
