-- Binds a session to an owner and keeps the owner within its cap, atomically.
-- KEYS[1]: the session (value: the owner's hash), KEYS[2]: the owner's sessions on the
-- server (sorted by last use). ARGV: session id, owner hash, now ms, idle ms, cap, and the
-- prefix of session keys on this server (to drop an evicted session's own key).
local previous = redis.call('GET', KEYS[1])
if previous and previous ~= ARGV[2] then
  -- An upstream reusing an id hands it to the new owner only.
  redis.call('ZREM', string.sub(KEYS[2], 1, -string.len(ARGV[2]) - 1) .. previous, ARGV[1])
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
local evicted = 0
while redis.call('ZCARD', KEYS[2]) > tonumber(ARGV[5]) do
  local oldest = redis.call('ZPOPMIN', KEYS[2])
  redis.call('DEL', ARGV[6] .. oldest[1])
  evicted = evicted + 1
end
return evicted
