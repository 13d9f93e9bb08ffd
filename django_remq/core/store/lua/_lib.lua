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

-- Put job `id` (record at `key`) on `stream`. The entry carries the job id only: a
-- worker runs what deliver.lua reads from the record, never what an entry says. The
-- record remembers its entry id, so cancelling or deleting the job can take the entry
-- out, and deliver.lua can tell a stale copy of an entry from the live one. Further
-- arguments are field/value pairs written with it (one HSET for a new record).
local function enqueue(stream, key, id, ...)
  local eid = redis.call('XADD', stream, '*', 'id', id)
  redis.call('HSET', key, 'entry', eid, ...)
  return eid
end

-- Priority lanes. Priority 0 is the queue's stream (KEYS[1]); another priority N has
-- its own stream, KEYS[1] .. ':p' .. N (keys.QueueKeys.lane), under the same hash tag.
-- A script reaches a lane only through KEYS: callers pass, after the script's own keys,
-- the lane streams it may touch; lane_stream returns nil for one not passed.
local function lane_stream(p)
  p = tonumber(p) or 0
  if p == 0 then return KEYS[1] end
  local name = KEYS[1] .. ':p' .. p
  for i = 2, #KEYS do if KEYS[i] == name then return name end end
  return nil
end
-- The lane of the job at `key` (its record's `priority`, absent for 0).
local function lane_of(key)
  return tonumber(redis.call('HGET', key, 'priority') or '0') or 0
end
