-- admin_pause: take a waiting or delayed job off the stream / schedule until resumed.
-- KEYS/ARGV[1..3]: see _admin.lua.   ARGV[4] job id
-- A delayed job keeps its delay_until, so resuming it early does not run it early.
-- Returns {code, status before, record}; code "ok", "noop" (already paused),
-- "missing", or "state" (processing or finished: cannot be held back); or
-- {'lane', '', {}, priority} (see ask_lane, job_status).
local id = ARGV[4]
local status, early = job_status(id)
if early then return early end
if status == 'paused' then return reply('noop', id, status) end
if status ~= 'waiting' and status ~= 'delayed' then return reply('state', id, status) end
if status == 'waiting' then unstream(id) end
move(id, status, 'paused', NOW)
return reply('ok', id, status)
