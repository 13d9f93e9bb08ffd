-- finish: apply the outcome of delivered jobs and acknowledge their entries, atomically.
-- An entry is acknowledged (XACK + XDEL, so the stream keeps only unacknowledged
-- entries) in the same step as its job's state change; a crash before this leaves
-- the entry pending, to be reclaimed.
-- KEYS: the queue's standard script keys (1 stream, 2 paused flag, 3..9 status indexes)
-- ARGV[1] job key prefix   ARGV[2] logs key prefix   ARGV[3] group
-- ARGV[4..7] retention: completed max age ms, completed max count,
--            failed max age ms, failed max count ("-1" = keep)
-- ARGV[8..] one group per outcome: entry id, job id, kind, run_at_ms, n, then n
--   values (field/value pairs to set on the record). kind is one of
--   "completed" | "failed" | "cancelled"   final state
--   "retry"      back to the schedule at run_at_ms (or the stream if already due)
--   "malformed"  a new failed record for an entry that had no usable job id
-- Returns one integer per outcome: 1 applied, 0 ignored (already acknowledged
-- elsewhere, e.g. by a worker that reclaimed the entry, or the job was deleted).
local IDX = {waiting = KEYS[3], delayed = KEYS[4], processing = KEYS[5], completed = KEYS[6],
             failed = KEYS[7], cancelled = KEYS[8], paused = KEYS[9]}
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local stream, group, jobs, logs = KEYS[1], ARGV[3], ARGV[1], ARGV[2]
local keep = {completed = {tonumber(ARGV[4]), tonumber(ARGV[5])},
              failed = {tonumber(ARGV[6]), tonumber(ARGV[7])},
              cancelled = {tonumber(ARGV[6]), tonumber(ARGV[7])}}
local touched = {}
local out = {}
local i = 8
while i <= #ARGV do
  local eid, id, kind, run_at, n = ARGV[i], ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3]), tonumber(ARGV[i + 4])
  local key = jobs .. id
  local acked = redis.call('XACK', stream, group, eid)
  redis.call('XDEL', stream, eid)
  local status = redis.call('HGET', key, 'status')
  if acked == 0 or (kind ~= 'malformed' and status ~= 'processing') then
    out[#out + 1] = 0
  else
    if status and IDX[status] then redis.call('ZREM', IDX[status], id) end
    if n > 0 then redis.call('HSET', key, unpack(ARGV, i + 5, i + 4 + n)) end
    if kind == 'retry' then
      redis.call('HSET', key, 'deliveries', 0, 'lock_until', 0)
      if run_at > now then
        redis.call('HSET', key, 'status', 'delayed', 'delay_until', run_at)
        redis.call('ZADD', IDX.delayed, run_at, id)
      else
        redis.call('HSET', key, 'status', 'waiting', 'delay_until', 0)
        redis.call('XADD', stream, '*', 'id', id)
        redis.call('ZADD', IDX.waiting, now, id)
      end
    else
      local final = kind == 'malformed' and 'failed' or kind
      redis.call('HSET', key, 'status', final, 'finished_at', now, 'lock_until', 0)
      redis.call('ZADD', IDX[final], now, id)
      local age = keep[final][1]
      if age >= 0 then
        redis.call('PEXPIRE', key, age)
        redis.call('PEXPIRE', logs .. id, age)
      end
      touched[final] = true
    end
    out[#out + 1] = 1
  end
  i = i + 5 + n
end
-- retention: index entries of expired records go by age; the oldest go by count
-- (bounded work per call; the next call carries on)
for status, _ in pairs(touched) do
  local age, max = keep[status][1], keep[status][2]
  if age >= 0 then redis.call('ZREMRANGEBYSCORE', IDX[status], '-inf', now - age) end
  if max >= 0 then
    local extra = math.min(redis.call('ZCARD', IDX[status]) - max, 1000)
    if extra > 0 then
      local old = redis.call('ZRANGE', IDX[status], 0, extra - 1)
      for _, oid in ipairs(old) do redis.call('DEL', jobs .. oid, logs .. oid) end
      redis.call('ZREMRANGEBYRANK', IDX[status], 0, extra - 1)
    end
  end
end
return out
