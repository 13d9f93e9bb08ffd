-- emit: create job records and enqueue them (stream, or the delayed schedule).
-- KEYS: the queue's standard script keys (see keys.QueueKeys.script_keys):
--   1 stream, 2 paused flag, 3..9 status indexes in STATUSES order (_lib.lua),
--   then the lane streams of the jobs' priorities other than 0 (the caller registers
--   the lanes in the queue's lanes ZSET, in the same round trip)
-- ARGV[1] job key prefix    ARGV[2] logs key prefix
-- ARGV[3] JSON list of jobs, each [id, run_at_ms (0 = now), [field, value, ...], priority]
-- A job whose id belongs to a live job (waiting, delayed, processing, paused) is
-- not enqueued again; a finished job with that id is replaced.
-- Returns one integer per job: 1 enqueued, 0 skipped as a duplicate of a live job.
local IDX = status_keys()
local now = now_ms()
local out = {}
for n, job in ipairs(cjson.decode(ARGV[3])) do
  local id, delay, fields = job[1], job[2], job[3]
  local key = ARGV[1] .. id
  local old = redis.call('HGET', key, 'status')
  if old and not FINAL[old] then
    out[n] = 0
  else
    if old then
      if IDX[old] then redis.call('ZREM', IDX[old], id) end
      redis.call('DEL', key, ARGV[2] .. id)
    end
    if delay > now then
      redis.call('HSET', key, 'timestamp', now, 'status', 'delayed', 'delay_until', delay,
                 unpack(fields))
      redis.call('ZADD', IDX.delayed, delay, id)
    else
      redis.call('HSET', key, 'timestamp', now, 'status', 'waiting', unpack(fields))
      enqueue(lane_stream(job[4]) or error('emit: lane ' .. job[4] .. ' not in KEYS'), key, id)
      redis.call('ZADD', IDX.waiting, now, id)
    end
    out[n] = 1
  end
end
return out
