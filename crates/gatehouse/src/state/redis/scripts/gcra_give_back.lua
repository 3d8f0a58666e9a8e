-- Gives back one interval (ARGV[1], microseconds) of a cell that still exists.
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat then
  redis.call('SET', KEYS[1], string.format('%d', tat - tonumber(ARGV[1])), 'KEEPTTL')
end
return 1
