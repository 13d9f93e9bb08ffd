-- admin_run_now: a delayed job runs now: its delay dropped, into its lane's stream.
-- KEYS/ARGV[1..3]: see _admin.lua.   ARGV[4] job id
-- Returns {code, status before, record}; code "ok", "noop" (waiting: already due),
-- "missing", or "state" (paused, processing or finished); or {'lane', '', {}, priority}
-- (see ask_lane, job_status).
local id = ARGV[4]
local status, early = job_status(id)
if early then return early end
if status == 'waiting' then return reply('noop', id, status) end
if status ~= 'delayed' then return reply('state', id, status) end
requeue(id, status, 0)
return reply('ok', id, status)
