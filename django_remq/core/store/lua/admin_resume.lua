-- admin_resume: put a paused job back in the stream (or the schedule, if still due later).
-- KEYS/ARGV[1..3]: see _admin.lua.   ARGV[4] job id
-- Returns {code, status before, record}; code "ok", "noop" (waiting or delayed:
-- already on its way), "missing", or "state" (processing or finished); or
-- {'lane', '', {}, priority} (see ask_lane, job_status).
local id = ARGV[4]
local key = JOBS .. id
local status, early = job_status(id)
if early then return early end
if status == 'waiting' or status == 'delayed' then return reply('noop', id, status) end
if status ~= 'paused' then return reply('state', id, status) end
requeue(id, status, tonumber(redis.call('HGET', key, 'delay_until') or '0') or 0)
return reply('ok', id, status)
