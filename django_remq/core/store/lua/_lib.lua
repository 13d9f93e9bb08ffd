-- _lib: helpers shared by every script; scripts.py prepends this file to each one.

-- Redis's clock, in ms: every worker and emitter agrees on "now".
local function now_ms()
  local t = redis.call('TIME')
  return t[1] * 1000 + math.floor(t[2] / 1000)
end

-- Put job `id` (record at `key`) on `stream`. The entry carries the job id only: a
-- worker runs what deliver.lua reads from the record, never what an entry says. The
-- record remembers its entry id, so cancelling or deleting the job can take the entry
-- out, and deliver.lua can tell a stale copy of an entry from the live one.
local function enqueue(stream, key, id)
  local eid = redis.call('XADD', stream, '*', 'id', id)
  redis.call('HSET', key, 'entry', eid)
  return eid
end
