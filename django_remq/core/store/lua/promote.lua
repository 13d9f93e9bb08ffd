-- promote: move due jobs from the delayed schedule to the stream.
-- Safe to run from every worker at once: each due id is moved exactly once.
-- KEYS: the queue's standard script keys (1 stream, 2 paused flag, 3..9 status indexes)
-- ARGV[1] job key prefix   ARGV[2] max jobs to move in this call
-- Returns {moved, ms until the next due job or -1 when none, now ms, 1 if the queue
-- is paused else 0} (workers refresh their view of paused queues from this).
local IDX = status_keys()
local now = now_ms()
local due = redis.call('ZRANGEBYSCORE', IDX.delayed, '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(due) do
  redis.call('ZREM', IDX.delayed, id)
  local key = ARGV[1] .. id
  if redis.call('HGET', key, 'status') == 'delayed' then
    redis.call('HSET', key, 'status', 'waiting')
    enqueue(KEYS[1], key, id)
    redis.call('ZADD', IDX.waiting, now, id)
  end
end
local nxt = redis.call('ZRANGE', IDX.delayed, 0, 0, 'WITHSCORES')
local wait = -1
if nxt[2] then wait = math.max(tonumber(nxt[2]) - now, 0) end
return {#due, wait, now, redis.call('EXISTS', KEYS[2])}
