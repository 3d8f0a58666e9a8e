-- One GCRA step (state::Gcra::step, in microseconds), atomic in Redis.
-- KEYS[1]: the subject's cell (its TAT). ARGV: interval, tolerance, charge (0/1), and for
-- tests only a `now`; otherwise Redis's own clock, one for every replica.
-- Microseconds keep every value below 2^53, exact in Lua's doubles.
local now = tonumber(ARGV[4])
if not now then local t = redis.call('TIME'); now = t[1] * 1000000 + t[2] end
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local nxt = tat + tonumber(ARGV[1])
if nxt - now > tonumber(ARGV[2]) then return {0, nxt - now - tonumber(ARGV[2])} end
if ARGV[3] == '1' then
  redis.call('SET', KEYS[1], string.format('%d', nxt), 'PX', math.ceil((nxt - now) / 1000) + 1)
end
return {1, 0}
