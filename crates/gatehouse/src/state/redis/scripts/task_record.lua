-- Records who created a task, keeping each owner within its cap and all records within the
-- capacity, the soonest to expire going first (the owner's own first), as in memory.
-- KEYS[1]: the task (value: the owner's hash), KEYS[2]: the owner's tasks by expiry,
-- KEYS[3]: every task by expiry. ARGV: member (`server:task`), owner hash, expiry (epoch ms),
-- per-owner cap, capacity, the prefix that makes a member a task key.
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('SET', KEYS[1], ARGV[2], 'PXAT', ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
local latest = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[2], latest[2])
while redis.call('ZCARD', KEYS[2]) > tonumber(ARGV[4]) do
  local oldest = redis.call('ZPOPMIN', KEYS[2])
  redis.call('DEL', ARGV[6] .. oldest[1])
  redis.call('ZREM', KEYS[3], oldest[1])
end
while redis.call('ZCARD', KEYS[3]) > tonumber(ARGV[5]) do
  local oldest = redis.call('ZPOPMIN', KEYS[3])
  redis.call('DEL', ARGV[6] .. oldest[1])
end
return 1
