-- deliver: turn stream entries a worker holds into running jobs. A worker starts a
-- handler only for a "run" verdict of this script: the job is then `processing` for it.
-- KEYS: the queue's standard script keys (1 stream, 2 paused flag, 3..9 status indexes)
-- ARGV[1] job key prefix   ARGV[2] group   ARGV[3] consumer   ARGV[4] lock_ms
-- ARGV[5] max deliveries   ARGV[6] mode: "fetch", "pending" or "claim"
-- ARGV[7] mode "fetch": count -- read up to count new entries (XREADGROUP, not
--           blocking) and deliver them in the same step: one round trip under load.
--         mode "pending": count -- deliver the entries this consumer holds but has not
--           delivered (its blocking XREADGROUP, pipelined just before this call, took
--           them); entries of jobs already `processing` for this consumer are skipped.
--         mode "claim": min idle ms; ARGV[8] count -- entries idle that long are
--           taken over (XAUTOCLAIM) from workers that stopped renewing them.
-- Every record is checked before anything is written, so a bad one never leaves a
-- half-done step nor stops the rest of the batch.
-- Returns a list of {entry id, job id, verdict, record}; verdict is
--   "run"        the job is now processing; record = the values of RUN_FIELDS below
--   "gone"       the job will not run (cancelled, deleted, finished), or this entry
--                is a stale copy (the record names another, live entry): acked
--   "orphan"     no job has this id: acked
--   "requeued"   the queue is paused: entry moved to the stream's end, job waiting
--   "poison"     delivered more than max deliveries times; record. Not acked: the
--                worker fails it through finish.lua (one failure path, at-least-once)
--   "corrupt"    the record has a field this script cannot use (record = RUN_FIELDS,
--                then the bad field's name and value); the job is processing without
--                counting the delivery. Not acked: the worker fails it via finish.lua
--   "unreadable" the job key holds no hash (record = {its type}): acked, taken out
--                of the waiting/processing indexes, the key left as found
--   "malformed"  the entry has no job id; record = the entry's raw fields. Not acked:
--                the worker records it through finish.lua
local IDX = status_keys()
local now = now_ms()
local stream, group, me, mode = KEYS[1], ARGV[2], ARGV[3], ARGV[6]
local entries = {}
local function add_entries(list)
  for _, e in ipairs(list) do
    local fields, jid = e[2], ''
    if fields then
      for j = 1, #fields, 2 do if fields[j] == 'id' then jid = fields[j + 1] end end
    end
    entries[#entries + 1] = {e[1], jid, fields}
  end
end
if mode == 'claim' then
  add_entries(redis.call('XAUTOCLAIM', stream, group, me, ARGV[7], '0-0', 'COUNT', ARGV[8])[2])
elseif mode == 'fetch' then
  local res = redis.call('XREADGROUP', 'GROUP', group, me, 'COUNT', ARGV[7], 'STREAMS', stream,
                         '>')
  -- Redis answers {{stream, entries}} or nil; fakeredis {stream, entries} or {}
  if res and type(res[1]) == 'table' then add_entries(res[1][2])
  elseif res and res[2] then add_entries(res[2]) end
else
  -- this consumer's pending entries, by XPENDING + XRANGE: reading the history with
  -- XREADGROUP would reset their idle time, renewing entries no task runs
  for _, p in ipairs(redis.call('XPENDING', stream, group, '-', '+', ARGV[7], me)) do
    local found = redis.call('XRANGE', stream, p[1], p[1])[1]
    if found then add_entries({found}) else entries[#entries + 1] = {p[1], '', false} end
  end
end
-- what a worker needs to run a job (keep in step with store/ops.py RUN_FIELDS)
local RUN_FIELDS = {'name', 'data', 'options', 'retried_attempts', 'retry_count', 'timestamp',
                    'deliveries', 'watch'}
local paused = redis.call('EXISTS', KEYS[2]) == 1
local function drop(eid)
  redis.call('XACK', stream, group, eid)
  redis.call('XDEL', stream, eid)
end
local function run_fields(key)
  local values = redis.call('HMGET', key, unpack(RUN_FIELDS))
  for i = 1, #RUN_FIELDS do values[i] = values[i] or '' end  -- no nils in replies
  return values
end
local function key_type(key)
  local t = redis.call('TYPE', key)
  return type(t) == 'table' and t.ok or t
end
-- another entry of the job is its live one (the record names it): this one is a replay
local function stale(eid, current)
  return current and current ~= eid and string.match(current, '^%d+%-%d+$') ~= nil
    and redis.call('XRANGE', stream, current, current)[1] ~= nil
end
-- a counter HINCRBY can add to: absent, or a plain non-negative integer
local function is_count(v)
  return not v or (string.match(v, '^%d+$') ~= nil and #v <= 15)
end
local out = {}
for _, e in ipairs(entries) do
  local eid, id, raw = e[1], e[2], e[3]
  local key = ARGV[1] .. id
  if not raw then
    redis.call('XACK', stream, group, eid)  -- deleted while pending: nothing to deliver
  elseif id == '' then
    out[#out + 1] = {eid, '', 'malformed', raw}
  else
    local kind = key_type(key)
    if kind ~= 'hash' and kind ~= 'none' then
      drop(eid)
      redis.call('ZREM', IDX.waiting, id)
      redis.call('ZREM', IDX.processing, id)
      out[#out + 1] = {eid, id, 'unreadable', {kind}}
    else
      local rec = redis.call('HMGET', key, 'status', 'worker', 'deliveries', 'entry')
      local status = rec[1]
      if not status then
        drop(eid)
        out[#out + 1] = {eid, id, 'orphan', {}}
      elseif status ~= 'waiting' and status ~= 'processing' then
        drop(eid)
        out[#out + 1] = {eid, id, 'gone', {}}
      elseif stale(eid, rec[4]) then
        drop(eid)
        out[#out + 1] = {eid, id, 'gone', {}}
      elseif mode == 'pending' and status == 'processing' and rec[2] == me then
        -- delivered to this worker already (running, or finishing): nothing to do
      elseif paused then
        drop(eid)
        if status == 'processing' then  -- a dead worker's job: it waits like the rest
          redis.call('ZREM', IDX.processing, id)
          redis.call('ZADD', IDX.waiting, now, id)
          redis.call('HSET', key, 'status', 'waiting', 'lock_until', 0)
        end
        enqueue(stream, key, id)
        out[#out + 1] = {eid, id, 'requeued', {}}
      else
        local verdict = 'run'
        local n = 0
        if is_count(rec[3]) then
          n = redis.call('HINCRBY', key, 'deliveries', 1)
          if n > tonumber(ARGV[5]) then verdict = 'poison' end
        else
          verdict = 'corrupt'
        end
        redis.call('ZREM', IDX.waiting, id)
        redis.call('ZADD', IDX.processing, now, id)
        redis.call('HSET', key, 'status', 'processing', 'last_run', now,
                   'lock_until', now + ARGV[4], 'worker', me)
        local values = run_fields(key)
        if verdict == 'corrupt' then
          values[#values + 1] = 'deliveries'
          values[#values + 1] = rec[3]
        end
        out[#out + 1] = {eid, id, verdict, values}
      end
    end
  end
end
return out
