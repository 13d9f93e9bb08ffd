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
-- Tell idle workers what they would otherwise poll for (worker/wakeups.py): `kind`
-- ('due': a job scheduled at `n` ms; 'lane': a new lane stream) in the queue that `key`
-- belongs to. The channel is <prefix>:wake (keys.Keys.wake); PUBLISH names no key, so a
-- cluster allows it in any script and delivers it to every node's subscribers.
local function wake(key, kind, n)
  local prefix, queue = string.match(key, '^(.*):{([^}]*)}:')
  if prefix then
    redis.call('PUBLISH', prefix .. ':wake', kind .. ' ' .. queue .. ' ' .. string.format('%d', n))
  end
end
-- The lane of the job at `key` (its record's `priority`, absent for 0).
local function lane_of(key)
  return tonumber(redis.call('HGET', key, 'priority') or '0') or 0
end

-- Bytes that are not UTF-8. Python clients decode replies (decode_responses), and one
-- value that does not decode fails the whole reply: every job of a batch with it. The
-- engine reads records with clients that do not decode and decodes them field by field
-- (records.py); a script checks with utf8_ok only what it must judge itself (deliver.lua:
-- a stream entry's fields). It costs a scan per byte in Lua: never on a record's values.
local NOT_UTF8 = '__not_utf8__'  -- records.NOT_UTF8: see utf8_fields
-- the well-formed sequences (no overlongs, no surrogates, nothing past U+10FFFF), as
-- Python's strict decoder takes them; lead and continuation bytes never overlap, so
-- each pattern matches only where a sequence starts
local UTF8_SEQUENCES = {'[\194-\223][\128-\191]', '\224[\160-\191][\128-\191]',
  '[\225-\236\238\239][\128-\191][\128-\191]', '\237[\128-\159][\128-\191]',
  '\240[\144-\191][\128-\191][\128-\191]', '[\241-\243][\128-\191][\128-\191][\128-\191]',
  '\244[\128-\143][\128-\191][\128-\191]'}
local function utf8_ok(s)
  local n = #s
  if n == 0 then return true end
  -- ASCII, the usual case: the highest byte, in C (a short value's bytes fit the stack)
  if n <= 4000 then
    if math.max(string.byte(s, 1, n)) < 128 then return true end
  elseif not string.find(s, '[\128-\255]') then
    return true
  end
  for _, seq in ipairs(UTF8_SEQUENCES) do s = string.gsub(s, seq, '.') end
  return not string.find(s, '[\128-\255]')
end
-- `s` with every byte above 0x7f as \xNN and a backslash as \\: ASCII, and nothing lost
-- (Python's codecs.escape_decode gives the bytes back).
local function escape_bytes(s)
  return (string.gsub(s, '[\\\128-\255]', function(c)
    if c == '\\' then return '\\\\' end
    return string.format('\\x%02x', string.byte(c))
  end))
end
-- A flat field/value list (HGETALL, a stream entry) safe to return: as it is when every
-- name and value is UTF-8, else with each pair at fault escaped, name and value (so
-- which to unescape is never a guess), and a last pair NOT_UTF8 = their escaped names,
-- a JSON array (records.pairs_to_dict does the same in Python).
local function utf8_fields(flat)
  local bad
  for i = 1, #flat - 1, 2 do
    if not (utf8_ok(flat[i]) and utf8_ok(flat[i + 1])) then
      flat[i], flat[i + 1] = escape_bytes(flat[i]), escape_bytes(flat[i + 1])
      bad = bad or {}
      bad[#bad + 1] = flat[i]
    end
  end
  if not bad then return flat end
  flat[#flat + 1] = NOT_UTF8
  flat[#flat + 1] = cjson.encode(bad)
  return flat
end
