-- deliver: turn stream entries read (or reclaimed) by a worker into running jobs.
-- KEYS: the queue's standard script keys (1 stream, 2 paused flag, 3..9 status indexes)
-- ARGV[1] job key prefix   ARGV[2] group   ARGV[3] consumer   ARGV[4] lock_ms
-- ARGV[5] max deliveries   ARGV[6] mode: "fetch", "read" or "claim"
-- ARGV[7] mode "fetch": count -- read up to count new entries (XREADGROUP, not
--           blocking) and deliver them in the same step: one round trip under load.
--         mode "read": JSON list of [stream entry id, job id] that the worker got
--           from its blocking XREADGROUP.
--         mode "claim": min idle ms; ARGV[8] count -- entries idle that long are
--           taken over (XAUTOCLAIM) from workers that stopped renewing them.
-- Returns a list of {entry id, job id, verdict, record}; verdict is
--   "run"       the job is now processing; record = the values of RUN_FIELDS below
--   "gone"      no record, or the job will not run (deleted, cancelled, done): acked
--   "requeued"  the queue was paused after the read: entry moved to the stream's end
--   "poison"    delivered more than max deliveries times; record. Not acked: the
--               worker fails it through finish.lua (one failure path, at-least-once)
--   "malformed" the entry has no job id; record = the entry's raw fields. Not acked:
--               the worker records it through finish.lua
local IDX = status_keys()
local now = now_ms()
local stream, group = KEYS[1], ARGV[2]
local entries = {}
local function add_entries(list)
  for _, e in ipairs(list) do
    local fields, jid = e[2], false
    for j = 1, #fields, 2 do if fields[j] == 'id' then jid = fields[j + 1] end end
    entries[#entries + 1] = {e[1], jid or '', fields}
  end
end
if ARGV[6] == 'claim' then
  add_entries(redis.call('XAUTOCLAIM', stream, group, ARGV[3], ARGV[7], '0-0', 'COUNT', ARGV[8])[2])
elseif ARGV[6] == 'fetch' then
  local res = redis.call('XREADGROUP', 'GROUP', group, ARGV[3], 'COUNT', ARGV[7], 'STREAMS', stream, '>')
  -- Redis answers {{stream, entries}} or nil; fakeredis {stream, entries} or {}
  if res and type(res[1]) == 'table' then add_entries(res[1][2])
  elseif res and res[2] then add_entries(res[2]) end
else
  for _, e in ipairs(cjson.decode(ARGV[7])) do entries[#entries + 1] = {e[1], e[2], false} end
end
-- what a worker needs to run a job (keep in step with store/ops.py RUN_FIELDS)
local RUN_FIELDS = {'name', 'data', 'options', 'retried_attempts', 'retry_count', 'timestamp',
                    'deliveries', 'watch'}
local paused = redis.call('EXISTS', KEYS[2]) == 1
local function drop(eid)
  redis.call('XACK', stream, group, eid)
  redis.call('XDEL', stream, eid)
end
local out = {}
for _, e in ipairs(entries) do
  local eid, id = e[1], e[2]
  local key = ARGV[1] .. id
  local status = id ~= '' and redis.call('HGET', key, 'status')
  if id == '' then
    local raw = e[3]
    if not raw then
      local found = redis.call('XRANGE', stream, eid, eid)[1]
      raw = found and found[2] or {}
    end
    out[#out + 1] = {eid, '', 'malformed', raw}
  elseif status ~= 'waiting' and status ~= 'processing' then
    drop(eid)
    out[#out + 1] = {eid, id, 'gone', {}}
  elseif paused then
    drop(eid)
    enqueue(stream, key, id)
    out[#out + 1] = {eid, id, 'requeued', {}}
  else
    local n = redis.call('HINCRBY', key, 'deliveries', 1)
    redis.call('ZREM', IDX.waiting, id)
    redis.call('ZADD', IDX.processing, now, id)
    redis.call('HSET', key, 'status', 'processing', 'last_run', now, 'lock_until', now + ARGV[4],
               'worker', ARGV[3])
    local verdict = n > tonumber(ARGV[5]) and 'poison' or 'run'
    local values = redis.call('HMGET', key, unpack(RUN_FIELDS))
    for i = 1, #RUN_FIELDS do values[i] = values[i] or '' end  -- no nils in replies
    out[#out + 1] = {eid, id, verdict, values}
  end
end
return out
