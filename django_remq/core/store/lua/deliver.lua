-- deliver: turn stream entries a worker holds into running jobs. A worker starts a
-- handler only for a "run" verdict of this script: the job is then `processing` for it.
-- KEYS: the queue's standard script keys (1 stream, 2 paused flag, 3..9 status indexes),
--   then the streams to work on, in order (the queue's priority lanes, KEYS[1] among
--   them; none: KEYS[1] alone). A lane without the group gets it (from id 0).
-- ARGV[1] job key prefix   ARGV[2] group   ARGV[3] consumer   ARGV[4] lock_ms
-- ARGV[5] max deliveries   ARGV[6] mode: "fetch", "pending" or "claim"
-- ARGV[7] extra record fields, comma-separated ('' none): returned with each job to
--   run, for the worker's caller; this script never reads them (see ops.check_extra_fields)
-- ARGV[8] mode "fetch": count -- read up to count new entries (XREADGROUP, not
--           blocking) from the streams in order and deliver them in the same step:
--           one round trip under load. ARGV[9] aging ms (optional, 0 = none): streams
--           whose next new entry has waited that long go first, oldest first (no lane
--           starves; see worker/lanes.py)
--         mode "pending": scan; ARGV[9] limit; ARGV[10..] per stream, the last entry id
--           this consumer was given there ("-": none known) -- deliver the entries this
--           consumer holds but has not delivered (its blocking XREADGROUP, pipelined just
--           before this call, took them), at most limit "run"s, streams in order; the
--           rest stay held (a last reply {'', '', 'held', {}, 0} says so). Only entries
--           after that id are read: a read with ">" only takes entries newer than any
--           the group gave out before, so the ones this consumer runs are not scanned
--           again (that cost two reads per running job on every pick-up). Entries of
--           jobs already `processing` for this consumer are skipped.
--         mode "claim": min idle ms; ARGV[9] count -- entries idle that long are
--           taken over (XAUTOCLAIM) from workers that stopped renewing them.
-- Every record is checked before anything is written, so a bad one never leaves a
-- half-done step nor stops the rest of the batch.
-- Returns a list of {entry id, job id, verdict, record, n[, extra]} (n: the entry's
-- stream is the n-th of those passed); verdict is
--   "run"        the job is now processing; record = the values of RUN_FIELDS below;
--                with ARGV[7], extra = the values of those fields ('' for unset)
--   "gone"       the job will not run (cancelled, deleted, finished), or this entry
--                is a stale copy (the record names another, live entry): acked
--   "orphan"     no job has this id: acked
--   "requeued"   the queue is paused: entry moved to the stream's end, job waiting
--   "poison"     delivered more than max deliveries times; record. Not acked: the
--                worker fails it through finish.lua (one failure path, at-least-once)
--   "corrupt"    the record has a field this script cannot use: a `status` none of
--                STATUSES, else a `deliveries` that is no count. record = RUN_FIELDS,
--                then the bad field's name and value; the job is processing (counting
--                the delivery if it can), kept as found otherwise. Not acked: the worker
--                fails it via finish.lua
--   "unreadable" the job key holds no hash (record = {its type}): acked, taken out
--                of the waiting/processing indexes, the key left as found
--   "malformed"  the entry has no job id, or a field name or value that is not UTF-8;
--                record = the entry's raw fields. Not acked: the worker records it
--                through finish.lua
-- Values are returned as stored: the worker reads this reply with a client that does not
-- decode and decodes each value itself; one that is not UTF-8 fails its own job only
-- (worker/reader.py's delivered), and a check here would cost a scan of every byte.
local IDX = status_keys()
local now = now_ms()
-- the numbers every delivery writes, as strings made once (Redis formats each number
-- argument of redis.call with snprintf: a visible share of its CPU)
local NOW, LOCK = tostring(now), tostring(now + ARGV[4])
local group, me, mode = ARGV[2], ARGV[3], ARGV[6]
local streams = {}
for i = 10, #KEYS do streams[#streams + 1] = KEYS[i] end
if #streams == 0 then streams[1] = KEYS[1] end
local entries = {}
local function add_entries(list, n)
  for _, e in ipairs(list) do
    local fields, jid = e[2], ''
    if fields then
      for j = 1, #fields, 2 do if fields[j] == 'id' then jid = fields[j + 1] end end
      -- emit writes UTF-8 only: any other byte makes the entry malformed (emit's entry
      -- is {'id', id}: one short value to look at)
      for j = 1, #fields do
        if not utf8_ok(fields[j]) then jid = '' break end
      end
    end
    entries[#entries + 1] = {e[1], jid, fields, n}
  end
end
-- a command on a lane stream that has no group yet: the main stream's NOGROUP is the
-- worker's to handle (it recreates its groups); a lane gets its group here
local function on_lane(s, ...)
  local res = redis.pcall(...)
  if type(res) == 'table' and res.err then
    if s == KEYS[1] or not string.find(res.err, 'NOGROUP') then error(res.err) end
    redis.call('XGROUP', 'CREATE', s, group, '0', 'MKSTREAM')
    res = redis.call(...)
  end
  return res
end
if mode == 'claim' then
  for n, s in ipairs(streams) do
    local left = tonumber(ARGV[9]) - #entries
    if left <= 0 then break end
    add_entries(on_lane(s, 'XAUTOCLAIM', s, group, me, ARGV[8], '0-0', 'COUNT', left)[2], n)
  end
elseif mode == 'fetch' then
  local order = {}
  for n = 1, #streams do order[n] = n end
  local aging = tonumber(ARGV[9] or '0') or 0
  if aging > 0 and #streams > 1 then
    -- the age of each stream's next new entry: the first after the group's last
    -- delivered id (an entry id starts with its XADD time in ms)
    local age = {}
    for n, s in ipairs(streams) do
      age[n] = -1
      local ok, groups = pcall(redis.call, 'XINFO', 'GROUPS', s)
      for _, g in ipairs(ok and groups or {}) do
        local info = {}
        for j = 1, #g, 2 do info[g[j]] = g[j + 1] end
        if info.name == group then
          local nxt = redis.call('XRANGE', s, '(' .. info['last-delivered-id'], '+', 'COUNT', 1)[1]
          if nxt then age[n] = now - tonumber(string.match(nxt[1], '^(%d+)')) end
        end
      end
    end
    table.sort(order, function(a, b)
      local old_a, old_b = age[a] >= aging, age[b] >= aging
      if old_a ~= old_b then return old_a end
      if old_a then return age[a] > age[b] end
      return a < b
    end)
  end
  for _, n in ipairs(order) do
    local s = streams[n]
    local left = tonumber(ARGV[8]) - #entries
    if left <= 0 then break end
    local res = on_lane(s, 'XREADGROUP', 'GROUP', group, me, 'COUNT', left, 'STREAMS', s, '>')
    -- Redis answers {{stream, entries}} or nil; fakeredis {stream, entries} or {}
    if res and type(res[1]) == 'table' then add_entries(res[1][2], n)
    elseif res and res[2] then add_entries(res[2], n) end
  end
else
  -- this consumer's pending entries, by XPENDING + XRANGE: reading the history with
  -- XREADGROUP would reset their idle time, renewing entries no task runs
  for n, s in ipairs(streams) do
    local after = ARGV[9 + n]
    local start = (after and after ~= '-') and ('(' .. after) or '-'
    for _, p in ipairs(on_lane(s, 'XPENDING', s, group, start, '+', ARGV[8], me)) do
      local found = redis.call('XRANGE', s, p[1], p[1])[1]
      if found then add_entries({found}, n) else entries[#entries + 1] = {p[1], '', false, n} end
    end
  end
end
-- what a worker needs to run a job (keep in step with store/calls.py RUN_FIELDS)
local RUN_FIELDS = {'name', 'data', 'options', 'retried_attempts', 'retry_count', 'timestamp',
                    'deliveries'}
local DELIVERIES = 7  -- its place in RUN_FIELDS
-- read in the same HMGET, after RUN_FIELDS
local READ = {unpack(RUN_FIELDS)}
local EXTRA = 0
for name in string.gmatch(ARGV[7], '[^,]+') do
  READ[#READ + 1] = name
  EXTRA = EXTRA + 1
end
-- nothing to deliver (an idle worker's read ended by its block): no more commands
if #entries == 0 then return {} end
local paused = redis.call('EXISTS', KEYS[2]) == 1
local stream  -- the stream of the entry at hand
local function drop(eid)
  redis.call('XACK', stream, group, eid)
  redis.call('XDEL', stream, eid)
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
-- the index moves of the jobs that run, one ZREM and one ZADD for the whole call (a
-- command run from Lua costs ~1 us besides its own work; the script is atomic)
local unwait, running = {}, {}
local limit = mode == 'pending' and tonumber(ARGV[9]) or #entries
local ran = 0
for _, e in ipairs(entries) do
  local eid, id, raw = e[1], e[2], e[3]
  local key = ARGV[1] .. id
  stream = streams[e[4]]
  local before = #out
  if ran >= limit then
    out[#out + 1] = {'', '', 'held', {}, 0}  -- held for this consumer, delivered next call
    break
  elseif not raw then
    redis.call('XACK', stream, group, eid)  -- deleted while pending: nothing to deliver
  elseif id == '' then
    out[#out + 1] = {eid, '', 'malformed', raw}
  else
    -- what the checks need and what a run needs, in one read (the record fields are
    -- rec[5..], in READ order); a key that is no hash fails the read
    local rec = redis.pcall('HMGET', key, 'status', 'worker', 'deliveries', 'entry',
                            unpack(READ))
    if rec.err then
      drop(eid)
      redis.call('ZREM', IDX.waiting, id)
      redis.call('ZREM', IDX.processing, id)
      out[#out + 1] = {eid, id, 'unreadable', {key_type(key)}}
    else
      local status = rec[1]
      local known = status and IDX[status] ~= nil
      if not status then
        drop(eid)
        out[#out + 1] = {eid, id, 'orphan', {}}
      elseif known and status ~= 'waiting' and status ~= 'processing' then
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
        local values = {}
        local bad, bad_value  -- the field that makes the record corrupt, and its value
        if not known then bad, bad_value = 'status', status end
        for i = 1, #RUN_FIELDS do values[i] = rec[i + 4] or '' end  -- no nils in replies
        local set = {'status', 'processing', 'last_run', NOW, 'lock_until', LOCK,
                     'worker', me}
        if is_count(rec[3]) then  -- this delivery counted, in the same HSET
          local n = tonumber(rec[3] or '0') + 1
          set[#set + 1] = 'deliveries'
          values[DELIVERIES] = tostring(n)
          set[#set + 1] = values[DELIVERIES]
          if n > tonumber(ARGV[5]) then verdict = 'poison' end
        elseif not bad then
          bad, bad_value = 'deliveries', rec[3]
        end
        if bad then verdict = 'corrupt' end
        if known then
          unwait[#unwait + 1] = id
        else  -- in whichever index: failed from processing, like any job
          for _, idx in pairs(IDX) do redis.call('ZREM', idx, id) end
        end
        running[#running + 1] = NOW
        running[#running + 1] = id
        redis.call('HSET', key, unpack(set))
        if bad then
          values[#values + 1] = bad
          values[#values + 1] = bad_value
        end
        out[#out + 1] = {eid, id, verdict, values}
        if verdict == 'run' then
          ran = ran + 1
          if EXTRA > 0 then
            local extra = {}
            for i = 1, EXTRA do extra[i] = rec[#RUN_FIELDS + 4 + i] or '' end
            out[#out][5], out[#out][6] = e[4], extra
          end
        end
      end
    end
  end
  if #out > before and out[#out][1] == eid then out[#out][5] = e[4] end
end
for i = 1, #unwait, 500 do
  redis.call('ZREM', IDX.waiting, unpack(unwait, i, math.min(i + 499, #unwait)))
end
for i = 1, #running, 1000 do
  redis.call('ZADD', IDX.processing, unpack(running, i, math.min(i + 999, #running)))
end
return out
