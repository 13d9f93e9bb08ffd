-- admin_retry: run a failed or cancelled job again, keeping its history.
-- KEYS/ARGV[1..3]: see _admin.lua.   ARGV[4] job id
-- Returns {code, status before, record}; code "ok", "missing", or "state" (the
-- status does not allow a retry); or {'lane', '', {}, priority} (see ask_lane, job_status).
local id = ARGV[4]
local status, early = job_status(id)
if early then return early end
if status ~= 'failed' and status ~= 'cancelled' then return reply('state', id, status) end
rerun(id, status)
return reply('ok', id, status)
