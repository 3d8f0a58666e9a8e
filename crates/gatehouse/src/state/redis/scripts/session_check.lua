-- Whether the session belongs to the owner (ARGV[1], its hash); if so, marks it used.
-- KEYS[1]: the session, KEYS[2]: the owner's sessions. ARGV: owner hash, session id, now ms,
-- idle ms.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return 1
