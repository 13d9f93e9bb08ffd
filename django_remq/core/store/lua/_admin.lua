-- _admin: helpers shared by the admin scripts (admin_*.lua). scripts.py prepends this
-- file to each of them; it is never run alone.
-- Every admin script takes the queue's standard KEYS (keys.QueueKeys.script_keys:
-- 1 stream, 2 paused flag, 3..9 status indexes) and ARGV[1] job key prefix,
-- ARGV[2] logs key prefix, ARGV[3] consumer group; its own arguments follow.
local IDX = status_keys()
local STREAM, JOBS, LOGS, GROUP = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
local NOW = now_ms()
local SCAN_PAGE, SCAN_PAGES = 1000, 10

-- Remove the stream entry of a waiting job, so a later re-enqueue cannot make a
-- second live entry. The record names its entry (_lib.lua's enqueue); for records
-- written before that, a bounded search starts just before the job's waiting-index
-- score. An entry it misses is dropped by deliver.lua, which skips jobs that are no
-- longer waiting.
local function unstream(id)
  local eid = redis.call('HGET', JOBS .. id, 'entry')
  if eid then
    redis.call('XACK', STREAM, GROUP, eid)
    if redis.call('XDEL', STREAM, eid) == 1 then return 1 end
  end
  local score = redis.call('ZSCORE', IDX.waiting, id)
  local start = score and (string.format('%.0f', tonumber(score) - 1000) .. '-0') or '-'
  for _ = 1, SCAN_PAGES do
    local page = redis.call('XRANGE', STREAM, start, '+', 'COUNT', SCAN_PAGE)
    for _, e in ipairs(page) do
      local f = e[2]
      for j = 1, #f, 2 do
        if f[j] == 'id' and f[j + 1] == id then
          redis.call('XACK', STREAM, GROUP, e[1])
          redis.call('XDEL', STREAM, e[1])
          return 1
        end
      end
    end
    if #page < SCAN_PAGE then return 0 end
    start = '(' .. page[#page][1]
  end
  return 0
end

local function move(id, from, to, score)
  if from and IDX[from] then redis.call('ZREM', IDX[from], id) end
  redis.call('ZADD', IDX[to], score, id)
  redis.call('HSET', JOBS .. id, 'status', to)
end

-- Put a job on its way again: into the stream now, or the schedule until run_at.
local function requeue(id, from, run_at)
  if run_at > NOW then
    move(id, from, 'delayed', run_at)
    redis.call('HSET', JOBS .. id, 'delay_until', run_at)
  else
    move(id, from, 'waiting', NOW)
    redis.call('HSET', JOBS .. id, 'delay_until', 0)
    enqueue(STREAM, JOBS .. id, id)
  end
end

-- A fresh run of a finished job; its logs, errors and attempt count are kept.
local function rerun(id, from)
  local key = JOBS .. id
  redis.call('PERSIST', key)
  redis.call('PERSIST', LOGS .. id)
  redis.call('HDEL', key, 'finished_at', 'result', 'cancel_requested', 'worker')
  redis.call('HSET', key, 'deliveries', 0, 'lock_until', 0)
  requeue(id, from, 0)
end

-- The usual reply of a one-job script: {code, status, record fields}.
local function reply(code, id, status)
  return {code, status or '', redis.call('HGETALL', JOBS .. id)}
end
