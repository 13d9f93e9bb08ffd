-- promote: move due jobs from the delayed schedule to the stream of their lane.
-- Safe to run from every worker at once: each due id is moved exactly once.
-- KEYS: the queue's standard script keys (1 stream, 2 paused flag, 3..9 status indexes),
--   10 the lanes registry, then the lane streams the caller knows of (a job whose lane
--   is not among them stays due, for the next call: the reply lists the lanes)
-- ARGV[1] job key prefix   ARGV[2] max jobs to move in this call
-- Returns {moved, ms until the next due job or -1 when none, now ms, 1 if the queue
-- is paused else 0, the lanes registry (priorities, highest first)} (workers refresh
-- their view of paused queues and of lanes from this).
local IDX = status_keys()
local now = now_ms()
local due = redis.call('ZRANGEBYSCORE', IDX.delayed, '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
local moved, wait = 0, -1
for _, id in ipairs(due) do
  local key = ARGV[1] .. id
  local got = redis.call('HMGET', key, 'priority', 'status')  -- the lane (_lib's lane_of)
  local p = tonumber(got[1] or '0') or 0
  local stream = lane_stream(p)
  if not stream then
    -- a lane the caller does not know yet: due again as soon as it does (the registry
    -- is re-added in case it was lost, so the next call knows it)
    redis.call('ZADD', KEYS[10], p, p)
    wait = 0
  else
    moved = moved + 1
    redis.call('ZREM', IDX.delayed, id)
    if got[2] == 'delayed' then
      redis.call('HSET', key, 'status', 'waiting')
      enqueue(stream, key, id)
      redis.call('ZADD', IDX.waiting, now, id)
    end
  end
end
if wait < 0 then
  local nxt = redis.call('ZRANGE', IDX.delayed, 0, 0, 'WITHSCORES')
  if nxt[2] then wait = math.max(tonumber(nxt[2]) - now, 0) end
end
return {moved, wait, now, redis.call('EXISTS', KEYS[2]),
        redis.call('ZREVRANGE', KEYS[10], 0, -1)}
