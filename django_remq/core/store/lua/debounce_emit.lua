-- debounce_emit: trailing-edge debounce of an emit.
-- The first emit for a debounce key creates a delayed job due in window_ms and
-- points the debounce key at it. Each later emit while that job is still delayed
-- (and not a retry) replaces its data/options with the latest and pushes its run
-- time to now + window_ms, but never past first emit + max_wait_ms; it leaves a
-- log line on the job and counts itself in the record's 'debounced' field.
-- KEYS: the queue's standard script keys (1 stream, 2 paused flag, 3..9 status
--       indexes), 10 the debounce key
-- ARGV[1] job key prefix   ARGV[2] logs key prefix   ARGV[3] window ms
-- ARGV[4] max wait ms (0 = none)   ARGV[5] log line (JSON)   ARGV[6] max log lines
-- ARGV[7..] field/value pairs of the new record, starting with 'id', <new id>
-- Returns the id of the job that will run.
local now = now_ms()
local window, max_wait = tonumber(ARGV[3]), tonumber(ARGV[4])
local ptr = redis.call('GET', KEYS[10])
if ptr then
  local key = ARGV[1] .. ptr
  local rec = redis.call('HMGET', key, 'status', 'retried_attempts', 'debounce_first')
  if rec[1] == 'delayed' and (not rec[2] or rec[2] == '0') then
    local due = now + window
    local first = tonumber(rec[3] or now)
    if max_wait > 0 then due = math.min(due, first + max_wait) end
    redis.call('HSET', key, unpack(ARGV, 9))
    redis.call('HSET', key, 'delay_until', due)
    redis.call('HINCRBY', key, 'debounced', 1)
    redis.call('ZADD', KEYS[4], due, ptr)
    wake(KEYS[1], 'due', due)
    redis.call('RPUSH', ARGV[2] .. ptr, ARGV[5])
    redis.call('LTRIM', ARGV[2] .. ptr, -tonumber(ARGV[6]), -1)
    redis.call('PEXPIRE', KEYS[10], due - now + window + 60000)
    return ptr
  end
end
local id = ARGV[8]
local key = ARGV[1] .. id
local due = now + window
local old = redis.call('HGET', key, 'status')
if old then
  -- an explicit id reused: a live job keeps running, a finished one is replaced
  if not FINAL[old] then return id end
  redis.call('ZREM', status_keys()[old], id)
  redis.call('DEL', key, ARGV[2] .. id)
end
redis.call('HSET', key, 'timestamp', now, 'status', 'delayed', 'delay_until', due,
           'debounce_first', now, unpack(ARGV, 7))
redis.call('ZADD', KEYS[4], due, id)
wake(KEYS[1], 'due', due)
redis.call('SET', KEYS[10], id, 'PX', due - now + window + 60000)
return id
