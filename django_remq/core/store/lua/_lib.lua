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

-- Bytes that are not UTF-8. Python clients decode every reply (decode_responses), and
-- one value that does not decode fails the whole reply: every job of a batch with it.
-- So a script returns no value it has not checked with utf8_ok; one that fails goes back
-- escaped, and its field is named under NOT_UTF8 (records.NOT_UTF8 in Python).
local NOT_UTF8 = '__not_utf8__'
-- the well-formed sequences (no overlongs, no surrogates, nothing past U+10FFFF), as
-- Python's strict decoder takes them; lead and continuation bytes never overlap, so
-- each pattern matches only where a sequence starts
local UTF8_SEQUENCES = {'[\194-\223][\128-\191]', '\224[\160-\191][\128-\191]',
  '[\225-\236\238\239][\128-\191][\128-\191]', '\237[\128-\159][\128-\191]',
  '\240[\144-\191][\128-\191][\128-\191]', '[\241-\243][\128-\191][\128-\191][\128-\191]',
  '\244[\128-\143][\128-\191][\128-\191]'}
local function utf8_ok(s)
  if not string.find(s, '[\128-\255]') then return true end  -- ASCII: one scan in C
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
-- name and value is UTF-8, else with the bad ones escaped and a last pair NOT_UTF8 =
-- the names of the fields at fault (escaped if need be), a JSON array.
local function utf8_fields(flat)
  local bad
  for i = 1, #flat - 1, 2 do
    local name, value = flat[i], flat[i + 1]
    local name_ok, value_ok = utf8_ok(name), utf8_ok(value)
    if not (name_ok and value_ok) then
      if not name_ok then flat[i] = escape_bytes(name) end
      if not value_ok then flat[i + 1] = escape_bytes(value) end
      bad = bad or {}
      bad[#bad + 1] = flat[i]
    end
  end
  if not bad then return flat end
  flat[#flat + 1] = NOT_UTF8
  flat[#flat + 1] = cjson.encode(bad)
  return flat
end
