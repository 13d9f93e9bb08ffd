-- _admin: helpers shared by the admin scripts (admin_*.lua). scripts.py prepends this
-- file to each of them; it is never run alone.
-- Every admin script takes the queue's standard KEYS (keys.QueueKeys.script_keys:
-- 1 stream, 2 paused flag, 3..9 status indexes), then, for those that change a job's
-- stream entry, 10 the lanes registry, 11 the queue's dead-letter stream, then lane
-- streams; and ARGV[1] job key prefix, ARGV[2] logs key prefix, ARGV[3] consumer group;
-- its own arguments follow.
local IDX = status_keys()
local STREAM, LANES, JOBS, LOGS, GROUP = KEYS[1], KEYS[10], ARGV[1], ARGV[2], ARGV[3]
local DLQ = KEYS[11]
local NOW = now_ms()

-- The stream of a job's lane (its record's priority), if the caller passed it in KEYS.
-- A one-job script makes sure of it first (ask_lane); admin_bulk gets every lane of the
-- registry. Should one be missing all the same (a registry lost), a requeue falls back
-- to the queue's stream: the job still runs, at priority 0's turn.
local function lane_for(id)
  return lane_stream(lane_of(JOBS .. id))
end

-- A one-job script calls this with the job's priority before it changes anything: nil
-- when the lane's stream is in KEYS (or the priority is 0, or not a whole number), else
-- the reply {'lane', '', {}, p}. The Sdk then passes that lane too and calls again. So
-- an action passes the lanes the Sdk has met, with no read of the registry before it,
-- and still names every key it touches in KEYS, as a Redis Cluster requires.
local function ask_lane(p)
  p = tonumber(p)
  if not p or p % 1 ~= 0 or lane_stream(p) then return nil end
  return {'lane', '', {}, p}
end

-- The status of the job a one-job script acts on (nil: no record), its priority read in
-- the same HMGET; and ask_lane's reply when its lane's stream is not in KEYS.
local function lane_and_status(id)
  local got = redis.call('HMGET', JOBS .. id, 'priority', 'status')
  return got[2], ask_lane(tonumber(got[1] or '0') or 0)
end
-- The same, for a script with nothing to do without a record: its status; or nil and the
-- reply to give at once: the lane to pass first (ask_lane), or 'missing'.
local function job_status(id)
  local status, ask = lane_and_status(id)
  if ask then return nil, ask end
  if not status then return nil, {'missing', '', {}} end
  return status
end

-- Remove the stream entry of a waiting job, so a later re-enqueue cannot make a
-- second live entry. The record names its entry (_lib.lua's enqueue). Should the
-- entry be gone already (or its lane not passed), deliver.lua drops a stale one
-- anyway: it skips jobs that are no longer waiting.
local function unstream(id)
  local eid = redis.call('HGET', JOBS .. id, 'entry')
  local stream = lane_for(id)
  if not eid or not stream then return 0 end
  redis.call('XACK', stream, GROUP, eid)
  return redis.call('XDEL', stream, eid)
end

local function move(id, from, to, score)
  if from and IDX[from] then redis.call('ZREM', IDX[from], id) end
  redis.call('ZADD', IDX[to], score, id)
  redis.call('HSET', JOBS .. id, 'status', to)
end

-- Put a job on its way again: into its lane's stream now, or the schedule until run_at.
-- A lane is (re-)added to the registry, as promote.lua does, so that workers read it
-- even if the registry was lost or never had it (a dead letter written by hand).
local function requeue(id, from, run_at)
  if run_at > NOW then
    move(id, from, 'delayed', run_at)
    redis.call('HSET', JOBS .. id, 'delay_until', run_at)
    wake(STREAM, 'due', run_at)
  else
    move(id, from, 'waiting', NOW)
    redis.call('HSET', JOBS .. id, 'delay_until', 0)
    local p = lane_of(JOBS .. id)
    local stream = lane_stream(p)
    if stream and stream ~= STREAM then
      redis.call('ZADD', LANES, p, p)
      if redis.call('EXISTS', stream) == 0 then wake(STREAM, 'lane', 0) end
    end
    enqueue(stream or STREAM, JOBS .. id, id)
  end
end

-- A job on its way again leaves the dead letters: finish.lua keeps the id of a job's one
-- entry in its record (`dlq_entry`), and that entry goes with the requeue.
local function drop_dead_letter(key)
  local eid = redis.call('HGET', key, 'dlq_entry')
  if not eid then return end
  redis.call('HDEL', key, 'dlq_entry')
  if DLQ then redis.pcall('XDEL', DLQ, eid) end  -- a key that is no stream: nothing to drop
end

-- A fresh run of a finished job; its logs, errors and attempt count are kept. A run
-- since the job was last put on its way (deliveries > 0) counts as an attempt, so the
-- next run's number follows it (errors read "attempt 1, 2, 3", never "2, 2").
local function rerun(id, from)
  local key = JOBS .. id
  redis.call('PERSIST', key)
  redis.call('PERSIST', LOGS .. id)
  drop_dead_letter(key)
  local ran = redis.call('HMGET', key, 'deliveries', 'retried_attempts')
  if (tonumber(ran[1]) or 0) > 0 then
    redis.call('HSET', key, 'retried_attempts', (tonumber(ran[2]) or 0) + 1)
  end
  redis.call('HDEL', key, 'finished_at', 'result', 'cancel_requested', 'worker')
  redis.call('HSET', key, 'deliveries', 0, 'lock_until', 0)
  requeue(id, from, 0)
end

-- A job's record fields for reading; a key that is not a hash reads as
-- {'__corrupt__', its type} (records.py reports it as CorruptRecord), never an error.
-- Values come as stored: the Sdk reads them with a client that does not decode.
local function record(id)
  local kind = redis.call('TYPE', JOBS .. id)['ok']
  if kind == 'hash' or kind == 'none' then return redis.call('HGETALL', JOBS .. id) end
  return {'__corrupt__', kind}
end

-- A job's log lines for reading ({} when the key is missing or not a list); a line
-- that is not UTF-8 comes escaped (and so no longer JSON: records.py names it).
local function log_lines(id)
  if redis.call('TYPE', LOGS .. id)['ok'] ~= 'list' then return {} end
  local lines = redis.call('LRANGE', LOGS .. id, 0, -1)
  for i, line in ipairs(lines) do
    if not utf8_ok(line) then lines[i] = escape_bytes(line) end
  end
  return lines
end

-- The usual reply of a one-job script: {code, status, record fields}.
local function reply(code, id, status)
  return {code, status or '', record(id)}
end

-- Bounded reads (admin_list's and admin_read's modes for the admin pages): values over
-- `cap` bytes stay in Redis. Mode 'rows:<cap>' is a listing's row (no data or result,
-- which rows do not show, not even read), 'preview:<cap>' the job page's record.
local CUT, TAIL_FIELDS = '__cut__', {errors = true, progress = true}
local ROW_SKIP, NO_SKIP = {data = true, result = true}, {}
local function bounded_mode(arg)
  local mode, cap = string.match(arg, '^(%a+):(%d+)$')
  if mode == 'rows' then return ROW_SKIP, tonumber(cap) end
  if mode == 'preview' then return NO_SKIP, tonumber(cap) end
  return nil, nil
end

-- i moved by step (-1 or 1) until s[i] starts a UTF-8 character: a cut between bytes of
-- one character would not decode
local function char_start(s, i, step)
  while i >= 1 and i <= #s do
    local b = string.byte(s, i)
    if b < 128 or b >= 192 then return i end
    i = i + step
  end
  return i
end

-- The record with each value over `cap` bytes left out and described in a last pair
-- CUT = JSON [[field, size in bytes, part], ...]: part is its first `cap` bytes, or its
-- last for errors and progress (where the latest error and the percent are), cut in Lua
-- so no large value crosses the wire; '' for a value over READ_MAX times `cap`, not read
-- at all (any read copies the whole value inside Redis). Fields in `skip` are left out
-- unread.
local READ_MAX = 16
local function bounded_record(id, cap, skip)
  local key = JOBS .. id
  if redis.call('TYPE', key)['ok'] ~= 'hash' then return record(id) end
  local flat, cuts = {}, {}
  for _, f in ipairs(redis.call('HKEYS', key)) do
    local size = skip[f] and -1 or redis.call('HSTRLEN', key, f)
    if size >= 0 and size <= cap then
      flat[#flat + 1] = f
      flat[#flat + 1] = redis.call('HGET', key, f)
    elseif size > READ_MAX * cap then
      cuts[#cuts + 1] = {f, size, ''}
    elseif size > cap then
      local v, part = redis.call('HGET', key, f), nil
      if TAIL_FIELDS[f] then part = string.sub(v, char_start(v, size - cap + 1, 1))
      else part = string.sub(v, 1, char_start(v, cap + 1, -1) - 1) end
      cuts[#cuts + 1] = {f, size, part}
    end
  end
  if #cuts > 0 then
    flat[#flat + 1] = CUT
    flat[#flat + 1] = cjson.encode(cuts)
  end
  return utf8_fields(flat)
end

-- The job's log lines, each over `cap` bytes replaced by a line saying so.
local function bounded_logs(id, cap)
  local lines = log_lines(id)
  for i, line in ipairs(lines) do
    if #line > cap then
      lines[i] = cjson.encode({message = string.format('[a log line of %d bytes, over the '
        .. '%d shown]', #line, cap), timestamp = tonumber(
        string.match(line, '"timestamp":(%d+)}$') or '0')})
    end
  end
  return lines
end
