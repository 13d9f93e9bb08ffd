-- finish: apply the outcome of delivered jobs and acknowledge their entries, atomically.
-- An entry is acknowledged (XACK + XDEL, so the stream keeps only unacknowledged
-- entries) in the same step as its job's state change; a crash before this leaves
-- the entry pending, to be reclaimed.
-- A job that ends failed gets its dead letter in this same script (when the worker
-- has a DLQ), so no crash can leave a failed job without its DLQ entry.
-- KEYS: the queue's standard script keys (1 stream: the lane the entries are on,
--   2 paused flag, 3..9 status indexes), 10 the queue's dead-letter stream
-- ARGV[1] job key prefix   ARGV[2] logs key prefix   ARGV[3] group
-- ARGV[4..7] retention: completed max age ms, completed max count,
--            failed max age ms, failed max count ("-1" = keep)
-- ARGV[8] JSON list of outcomes, each [entry id, job id, kind, run_at_ms,
--   [field, value, ...] to set on the record, error JSON or "", the DLQ entry's
--   [field, value, ...] or 0]. An error is appended to the record's ``errors`` list.
-- ARGV[9] the DLQ's MAXLEN (~); 0: no DLQ (nothing is dead-lettered, corrupt jobs neither)
-- kind is one of
--   "completed" | "failed" | "cancelled"   final state
--   "retry"      back to the schedule at run_at_ms (or the stream if already due)
--   "malformed"  a new failed record for an entry that had no usable job id
-- Returns one integer per outcome: 1 applied, 0 ignored (already acknowledged
-- elsewhere, e.g. by a worker that reclaimed the entry, or the job was deleted),
-- 2 the record could not be updated: the job is now failed as corrupt.
-- Each applied outcome is also counted (see `tally`): in <base>:totals, monotonic, and in
-- <base>:trend:<hour>, per minute, expiring; django_remq.core.sdk.metrics reads both.
local IDX = status_keys()
local now = now_ms()
-- numbers passed to redis.call are formatted by Redis with snprintf("%.17g") each time
-- (a visible share of its CPU): the ones every job writes go as strings made once
local NOW = tostring(now)
local stream, group, jobs, logs = KEYS[1], ARGV[3], ARGV[1], ARGV[2]
local keep = {completed = {tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[4]},
              failed = {tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV[6]},
              cancelled = {tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV[6]}}
local dlq, maxlen = KEYS[10], tonumber(ARGV[9])
local touched = {}
local out = {}

-- Writes batched across the call's jobs: one command each instead of one per job (a
-- command run from Lua costs ~1 us besides its own work). `acked`: the entries this
-- call acknowledged, deleted by one XDEL (Redis looks up the stream's first entry once
-- per XDEL, not once per id); `unindex` / `index`: per status index, the job ids to
-- ZREM / the score, id pairs to ZADD. The script is atomic: no reader sees the gap.
local acked_ids, unindex, index = {}, {}, {}
local function later(into, key, a, b)
  local list = into[key]
  if not list then list = {}; into[key] = list end
  list[#list + 1] = a
  if b then list[#list + 1] = b end
end
local function chunked(cmd, key, list, step)
  for i = 1, #list, step do
    redis.call(cmd, key, unpack(list, i, math.min(i + step - 1, #list)))
  end
end
local function flush_batched()
  chunked('XDEL', stream, acked_ids, 500)
  for key, ids in pairs(unindex) do chunked('ZREM', key, ids, 500) end
  for key, pairs_ in pairs(index) do chunked('ZADD', key, pairs_, 1000) end
  acked_ids, unindex, index = {}, {}, {}
end

-- Counters for the pages' trends and the metrics, written once per call (flush_tally):
-- <base>:totals HASH, never expiring: per outcome (completed, failed, cancelled, retried)
--   and run time (run_ms, h<i>: runs in histogram bucket i) since the queue began;
-- <base>:trend:<hour> HASH, the same per minute ("<minute of the hour>:<field>"),
--   expiring TREND_HOURS after its hour ends: at most TREND_HOURS + 1 per queue.
-- BOUNDS (ms) are the histogram's upper bounds (metrics.RUN_BOUNDS_MS); i = #BOUNDS + 1: more.
local BOUNDS = {5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000,
                300000, 900000, 3600000}
local TREND_HOURS = 24
local base = string.sub(jobs, 1, -6)  -- jobs is '<base>:job:'
local tally = {}
local function count(kind, started)
  tally[kind] = (tally[kind] or 0) + 1
  started = tonumber(started)
  if started and started > 0 and started <= now then
    local ms, i = now - started, #BOUNDS + 1
    for b, bound in ipairs(BOUNDS) do if ms <= bound then i = b; break end end
    tally.run_ms = (tally.run_ms or 0) + ms
    tally['h' .. i] = (tally['h' .. i] or 0) + 1
  end
end
local function flush_tally()
  if next(tally) == nil then return end
  local hour = math.floor(now / 3600000)
  local trend = base .. ':trend:' .. hour
  local minute = math.floor(now / 60000) % 60 .. ':'
  local fresh = false  -- a field new this minute: perhaps the hash too
  for field, n in pairs(tally) do
    redis.call('HINCRBY', base .. ':totals', field, n)
    if redis.call('HINCRBY', trend, minute .. field, n) == n then fresh = true end
  end
  -- the hour's hash gets its expiry when made (its first field is new), not every call
  if fresh then redis.call('PEXPIREAT', trend, (hour + 1 + TREND_HOURS) * 3600000) end
end

-- The dead letter of job `id`: `fields` plus its final record and log lines, as they
-- stand now. A DLQ key that is no stream loses the entry, never the job's failure.
-- One entry per job: an earlier failure's (its id in the record's `dlq_entry`) goes,
-- and the new entry's id takes its place (the admin's retry and requeue drop it too).
local function dead_letter(fields, key, id)
  local old = redis.call('HGET', key, 'dlq_entry')
  if old then redis.pcall('XDEL', dlq, old) end
  local flat, record = redis.call('HGETALL', key), {}
  local lines = redis.call('LRANGE', logs .. id, 0, -1)
  -- a corrupt record's bytes that are not UTF-8 go in escaped, so the copy is JSON any
  -- client reads (only then: the check scans every byte; see _lib.lua)
  for i = 1, #fields - 1, 2 do
    if fields[i] == 'reason' and fields[i + 1] == 'corrupt' then
      utf8_fields(flat)
      for n, line in ipairs(lines) do
        if not utf8_ok(line) then lines[n] = escape_bytes(line) end
      end
    end
  end
  for i = 1, #flat, 2 do record[flat[i]] = flat[i + 1] end
  record.dlq_entry = nil
  local entry = {unpack(fields)}
  entry[#entry + 1] = 'job'
  entry[#entry + 1] = cjson.encode(record)
  if #lines > 0 then
    entry[#entry + 1] = 'logs'
    entry[#entry + 1] = cjson.encode(lines)
  end
  local ok = redis.pcall('XADD', dlq, 'MAXLEN', '~', maxlen, '*', unpack(entry))
  if type(ok) == 'table' and ok.err then
    redis.log(redis.LOG_WARNING, 'remq: dead letter of job ' .. id .. ' not written to ' ..
              dlq .. ': ' .. ok.err)
    if old then redis.call('HDEL', key, 'dlq_entry') end
  else
    redis.call('HSET', key, 'dlq_entry', ok)
  end
end

-- has_logs false: the record says the job has no log lines (see update.lua); nil: unknown
local function expire(final, key, id, has_logs)
  local age, ms = keep[final][1], keep[final][3]  -- ms: the same, as passed
  if age >= 0 then
    redis.call('PEXPIRE', key, ms)
    if has_logs ~= false then redis.call('PEXPIRE', logs .. id, ms) end
  end
  touched[final] = true
end

local function put(set, f, v) set[#set + 1] = f; set[#set + 1] = v end
local function apply(eid, id, kind, run_at, fields, err, dead)
  local key = jobs .. id
  local acked = redis.call('XACK', stream, group, eid)
  acked_ids[#acked_ids + 1] = eid
  -- logged / debounced: the job has (or may have) log lines (update.lua, debounce_emit.lua)
  local got = redis.call('HMGET', key, 'status', 'last_run', 'logged', 'debounced')
  local status = got[1]
  if acked == 0 or (kind ~= 'malformed' and status ~= 'processing') then return 0 end
  if status and IDX[status] then later(unindex, IDX[status], id) end
  local set = fields  -- the outcome's fields, plus the state change below, in one HSET
  if err ~= '' then
    local prev = redis.call('HGET', key, 'errors')
    if prev and #prev > 2 then put(set, 'errors', string.sub(prev, 1, -2) .. ',' .. err .. ']')
    else put(set, 'errors', '[' .. err .. ']') end
  end
  local final = kind == 'malformed' and 'failed' or kind
  if kind == 'retry' then
    put(set, 'deliveries', '0'); put(set, 'lock_until', '0')
    if run_at > now then
      put(set, 'status', 'delayed'); put(set, 'delay_until', run_at)
      later(index, IDX.delayed, run_at, id)
      wake(stream, 'due', run_at)
    else
      put(set, 'status', 'waiting'); put(set, 'delay_until', '0')
      later(index, IDX.waiting, NOW, id)
    end
  else
    put(set, 'status', final); put(set, 'finished_at', NOW); put(set, 'lock_until', '0')
    later(index, IDX[final], NOW, id)
  end
  redis.call('HSET', key, unpack(set))
  if kind == 'retry' and run_at <= now then enqueue(stream, key, id) end
  if final == 'failed' and maxlen > 0 and type(dead) == 'table' then
    dead_letter(dead, key, id)
  end
  if keep[final] then expire(final, key, id, (got[3] or got[4]) and true) end  -- a final state: retention applies
  count(kind == 'retry' and 'retried' or final, kind ~= 'malformed' and got[2])
  return 1
end

-- A record this script cannot update (e.g. the key holds a string) fails its job as
-- corrupt: the entry is acknowledged, a failed record stands in (a non-hash value is
-- kept in its ``data``), and the rest of the batch is applied as usual. Returns 2.
local function corrupt(eid, id, why)
  local key = jobs .. id
  flush_batched()  -- this job's earlier index writes, if any, before those below
  redis.call('XACK', stream, group, eid)
  redis.call('XDEL', stream, eid)
  local kind = redis.call('TYPE', key)['ok']
  local set = {'id', id, 'queue', string.match(jobs, '{(.*)}') or '', 'status', 'failed',
               'finished_at', now, 'lock_until', 0}
  if kind ~= 'hash' then
    local raw = kind == 'string' and string.sub(redis.call('GET', key), 1, 1000) or kind
    redis.call('DEL', key)
    for _, v in ipairs({'name', '(corrupt record)', 'data', cjson.encode({corrupt = raw})}) do
      set[#set + 1] = v
    end
  end
  local msg = 'the job record could not be updated (' .. why .. '); the job failed as corrupt'
  set[#set + 1] = 'errors'
  set[#set + 1] = '[' .. cjson.encode({message = msg, type = 'CorruptRecord', traceback = '',
                                        attempt = 1, timestamp = now}) .. ']'
  for _, idx in pairs(IDX) do redis.call('ZREM', idx, id) end
  redis.call('HSET', key, unpack(set))
  redis.call('ZADD', IDX.failed, now, id)
  if maxlen > 0 then
    dead_letter({'id', id, 'queue', set[4], 'name', redis.call('HGET', key, 'name') or '',
                 'reason', 'corrupt', 'error', 'CorruptRecord: ' .. msg, 'attempts', '1'},
                key, id)
  end
  expire('failed', key, id)
  count('failed', nil)
  return 2
end

for n, o in ipairs(cjson.decode(ARGV[8])) do
  -- no TYPE check first (one call less per job): a key that is no hash fails apply's
  -- first read of the record, and the job fails as corrupt
  local ok, res = pcall(apply, o[1], o[2], o[3], o[4], o[5], o[6], o[7])
  if ok then
    out[n] = res
  else
    local kind = redis.call('TYPE', jobs .. o[2])['ok']
    local why = type(res) == 'table' and tostring(res.err) or tostring(res)
    if kind ~= 'hash' and kind ~= 'none' then why = 'it is a ' .. kind .. ', not a hash' end
    out[n] = corrupt(o[1], o[2], why)
  end
end
flush_batched()
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
flush_tally()
return out
