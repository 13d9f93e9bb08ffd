-- admin_cancel: a job that has not started will not run; a running job is asked to stop.
-- KEYS/ARGV[1..3]: see _admin.lua.   ARGV[4] job id
-- ARGV[5] ms to keep the cancelled record ("-1" = keep; as finish.lua's retention)
-- Returns {code, status before, record}; code
--   "ok"         waiting/delayed/paused -> cancelled (its stream entry is removed)
--   "requested"  processing: field cancel_requested set, for the worker to see
--   "noop"       already cancelled   "missing"   "state" (completed or failed)
-- or {'lane', '', {}, priority} (see ask_lane, job_status).
local id, keep = ARGV[4], tonumber(ARGV[5])
local key = JOBS .. id
local status, early = job_status(id)
if early then return early end
if status == 'cancelled' then return reply('noop', id, status) end
if status == 'processing' then
  redis.call('HSET', key, 'cancel_requested', NOW)
  return reply('requested', id, status)
end
if status ~= 'waiting' and status ~= 'delayed' and status ~= 'paused' then
  return reply('state', id, status)
end
if status == 'waiting' then unstream(id) end
move(id, status, 'cancelled', NOW)
redis.call('HSET', key, 'finished_at', NOW, 'lock_until', 0)
if keep >= 0 then
  redis.call('PEXPIRE', key, keep)
  redis.call('PEXPIRE', LOGS .. id, keep)
end
return reply('ok', id, status)
