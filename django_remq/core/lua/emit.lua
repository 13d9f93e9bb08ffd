-- emit: create job records and enqueue them (stream, or the delayed schedule).
-- KEYS: the queue's standard script keys (see keys.QueueKeys.script_keys):
--   1 stream, 2 paused flag, 3..9 status indexes in keys.STATUSES order
-- ARGV[1] job key prefix    ARGV[2] logs key prefix
-- ARGV[3..] one group per job: id, dedup ("1" keeps a live job with this id),
--           delay_until_ms ("0" = run now), n, then n values: field/value pairs
--           of the record (n counts values, not pairs).
-- Returns one integer per job: 1 enqueued, 0 skipped as a duplicate of a live job.
local IDX = {waiting = KEYS[3], delayed = KEYS[4], processing = KEYS[5], completed = KEYS[6],
             failed = KEYS[7], cancelled = KEYS[8], paused = KEYS[9]}
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local out = {}
local i = 3
while i <= #ARGV do
  local id, dedup, delay, n = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3])
  local key = ARGV[1] .. id
  local old = redis.call('HGET', key, 'status')
  if dedup == '1' and (old == 'waiting' or old == 'delayed' or old == 'processing' or old == 'paused') then
    out[#out + 1] = 0
  else
    if old then
      -- a job with this id that will not run again is replaced by the new one
      if IDX[old] then redis.call('ZREM', IDX[old], id) end
      redis.call('DEL', key, ARGV[2] .. id)
    end
    if delay > now then
      redis.call('HSET', key, 'timestamp', now, 'status', 'delayed', 'delay_until', delay,
                 unpack(ARGV, i + 4, i + 3 + n))
      redis.call('ZADD', IDX.delayed, delay, id)
    else
      redis.call('HSET', key, 'timestamp', now, 'status', 'waiting', unpack(ARGV, i + 4, i + 3 + n))
      redis.call('XADD', KEYS[1], '*', 'id', id)
      redis.call('ZADD', IDX.waiting, now, id)
    end
    out[#out + 1] = 1
  end
  i = i + 4 + n
end
return out
