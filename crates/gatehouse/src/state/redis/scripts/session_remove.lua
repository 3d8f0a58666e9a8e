-- Forgets a session. KEYS[1]: the session. ARGV: session id, the prefix of owner sets on
-- this server (the owner's hash completes it).
local owner = redis.call('GET', KEYS[1])
redis.call('DEL', KEYS[1])
if owner then redis.call('ZREM', ARGV[2] .. owner, ARGV[1]) end
return 1
