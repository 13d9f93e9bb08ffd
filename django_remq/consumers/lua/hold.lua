-- hold: one gateway user's hold on a task it emitted (see consumers/holds.py).
-- KEYS[1] the user's holds (ZSET: "<queue>:<job id>" -> deadline ms)
-- ARGV[1] now (ms)   ARGV[2] limit (-1: none)   ARGV[3] member   ARGV[4] deadline (ms)
-- Returns 1 if the hold is taken (or was held already), 0 at the limit.
local key, now, limit = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2])
local member, deadline = ARGV[3], tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
if limit >= 0 and not redis.call('ZSCORE', key, member)
    and redis.call('ZCARD', key) >= limit then
  return 0
end
redis.call('ZADD', key, deadline, member)
if redis.call('PTTL', key) < deadline - now then
  redis.call('PEXPIRE', key, deadline - now)
end
return 1
