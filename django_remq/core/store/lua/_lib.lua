-- _lib: helpers shared by every script; scripts.py prepends this file to each one.

-- Job statuses, the one Lua list (types.JobStatus is the Python one, same order). A
-- queue script's KEYS are the stream, the paused flag, then one index per status in
-- this order (keys.QueueKeys.script_keys): status_keys() maps each status to its key.
local STATUSES = {'waiting', 'delayed', 'processing', 'completed', 'failed', 'cancelled', 'paused'}
-- A final job does not run again unless someone retries it (JobStatus.final).
local FINAL = {completed = true, failed = true, cancelled = true}
local function status_keys()
  local idx = {}
  for i, status in ipairs(STATUSES) do idx[status] = KEYS[i + 2] end
  return idx
end

-- Redis's clock, in ms: every worker and emitter agrees on "now".
local function now_ms()
  local t = redis.call('TIME')
  return t[1] * 1000 + math.floor(t[2] / 1000)
end

-- Put job `id` (record at `key`) on `stream`. The entry carries what a worker needs
-- to start the job (the reader reads them back by name), so a worker woken by
-- its blocking read starts at once; the record remembers its entry id, so cancelling
-- or deleting the job can take the entry out.
local ENTRY_FIELDS = {'name', 'data', 'options', 'retried_attempts', 'retry_count', 'timestamp',
                      'watch'}
local function enqueue(stream, key, id)
  local values = redis.call('HMGET', key, unpack(ENTRY_FIELDS))
  local entry = {'id', id}
  for i, field in ipairs(ENTRY_FIELDS) do
    if values[i] then
      entry[#entry + 1] = field
      entry[#entry + 1] = values[i]
    end
  end
  local eid = redis.call('XADD', stream, '*', unpack(entry))
  redis.call('HSET', key, 'entry', eid)
  return eid
end
