-- emit: create job records and enqueue them (stream, or the delayed schedule).
-- KEYS: the queue's standard script keys (see keys.QueueKeys.script_keys):
--   1 stream, 2 paused flag, 3..9 status indexes in STATUSES order (_lib.lua),
--   then the lane streams of the jobs' priorities other than 0 (the caller registers
--   the lanes in the queue's lanes ZSET, in the same round trip)
-- ARGV[1] job key prefix    ARGV[2] logs key prefix
-- ARGV[3..] the jobs, one after the other, each as: id, run_at_ms (0 = now), priority,
--   n, then its n record items (field, value, ...). Flat, not JSON: emit is the hot
--   path, and decoding costs more than the writes it prepares.
-- A job whose id belongs to a live job (waiting, delayed, processing, paused) is
-- not enqueued again; a finished job with that id is replaced.
-- Returns one integer per job: 1 enqueued, 0 skipped as a duplicate of a live job.
local IDX = status_keys()
local now = now_ms()
local NOW = tostring(now)  -- made once: Redis formats each number argument with snprintf
local out = {}
local first_due, head, new_lane, lanes_seen = nil, nil, false, {}
-- the new jobs' index entries (score, id pairs): one ZADD per index for the call, not
-- one per job (a command run from Lua costs ~1 us besides its own work)
local added = {waiting = {}, delayed = {}}
local function index_added()
  for status, list in pairs(added) do
    for j = 1, #list, 1000 do
      redis.call('ZADD', IDX[status], unpack(list, j, math.min(j + 999, #list)))
    end
    added[status] = {}
  end
end
local function later(status, score, id)
  local list = added[status]
  list[#list + 1] = score
  list[#list + 1] = id
end
local i = 3
while i <= #ARGV do
  local id, run_at, priority = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2]
  local first, last = i + 4, i + 3 + tonumber(ARGV[i + 3])
  i = last + 1
  local key = ARGV[1] .. id
  local old = redis.call('HGET', key, 'status')
  if old and not FINAL[old] then
    out[#out + 1] = 0
  else
    if old then
      if IDX[old] then redis.call('ZREM', IDX[old], id) end
      redis.call('DEL', key, ARGV[2] .. id)
    end
    if run_at > now then
      if not head then  -- the schedule's first time before this call (-1: empty)
        head = tonumber(redis.call('ZRANGE', IDX.delayed, 0, 0, 'WITHSCORES')[2] or '-1')
      end
      redis.call('HSET', key, 'timestamp', NOW, 'status', 'delayed', 'delay_until', run_at,
                 unpack(ARGV, first, last))
      later('delayed', run_at, id)
      if not first_due or run_at < first_due then first_due = run_at end
    else
      local stream = lane_stream(priority)
      if not stream then
        index_added()  -- the jobs enqueued so far stay listed
        error('emit: lane ' .. priority .. ' not in KEYS')
      end
      if stream ~= KEYS[1] and not lanes_seen[stream] then
        lanes_seen[stream] = true  -- a lane stream made now: workers must read it
        if redis.call('EXISTS', stream) == 0 then new_lane = true end
      end
      enqueue(stream, key, id, 'timestamp', NOW, 'status', 'waiting', unpack(ARGV, first, last))
      later('waiting', NOW, id)
    end
    out[#out + 1] = 1
  end
end
index_added()
-- workers know the schedule's first time: only a job due before it is news to them
if first_due and (head < 0 or first_due < head) then wake(KEYS[1], 'due', first_due) end
if new_lane then wake(KEYS[1], 'lane', 0) end
return out
