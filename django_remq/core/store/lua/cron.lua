-- cron: claim a repeat handler's due tick and enqueue its run, exactly once per tick.
-- Every worker serving the queue calls this around each tick; the schedule ZSET
-- holds the next tick per event, so only the first caller after a tick finds it
-- due, enqueues one job and moves the tick on. Ticks missed while no worker ran
-- collapse into one run: the next tick is always in the future (no stampede).
-- KEYS: the queue's standard script keys (1 stream, 2 paused flag, 3..9 status
--       indexes), 10 the cron schedule ZSET, 11 the run counters HASH
-- ARGV[1] job key prefix   ARGV[2] event   ARGV[3] new job id   ARGV[4] limit (0 = none)
-- ARGV[5] k, then k candidate ticks (ms, ascending) computed by the caller
-- then n, then n values: field/value pairs of the new record
-- Returns {ran (1/0, or -1: no candidate tick is in the future), next tick ms, now ms}.
local now = now_ms()
local sched, runs, event = KEYS[10], KEYS[11], ARGV[2]
local k = tonumber(ARGV[5])
local function after(floor)
  for i = 6, 5 + k do
    local c = tonumber(ARGV[i])
    if c > floor then return c end
  end
  return nil
end
local score = redis.call('ZSCORE', sched, event)
if not score then
  local first = after(now)
  if not first then return {-1, 0, now} end
  redis.call('ZADD', sched, first, event)
  return {0, first, now}
end
score = tonumber(score)
if score > now then return {0, score, now} end
local nxt = after(math.max(now, score))
if not nxt then return {-1, score, now} end
local limit = tonumber(ARGV[4])
local count = tonumber(redis.call('HGET', runs, event) or '0')
if limit > 0 and count >= limit then
  redis.call('ZREM', sched, event)
  return {0, 0, now}
end
count = redis.call('HINCRBY', runs, event, 1)
redis.call('ZADD', sched, nxt, event)
local id = ARGV[3]
local key = ARGV[1] .. id
local n = tonumber(ARGV[6 + k])
redis.call('HSET', key, 'timestamp', now, 'status', 'waiting', 'delay_until', score,
           'next_run', nxt, 'repeat_count', count, 'repeat_delay_ms', nxt - score,
           unpack(ARGV, 7 + k, 6 + k + n))
enqueue(KEYS[1], key, id)
redis.call('ZADD', KEYS[3], now, id)
return {1, nxt, now}
