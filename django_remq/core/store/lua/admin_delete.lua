-- admin_delete: remove a job everywhere: record, logs, index entries, stream entry.
-- KEYS/ARGV[1..3]: see _admin.lua.   ARGV[4] job id
-- A running job's handler is not stopped, but its outcome is dropped (finish.lua
-- ignores jobs that are no longer processing) and nothing can bring the record back.
-- Returns {code, status before}; code "ok" or "missing"; or {'lane', '', {}, priority}
-- (see ask_lane, lane_and_status).
local id = ARGV[4]
local status, ask = lane_and_status(id)
if ask then return ask end
if status == 'waiting' then unstream(id) end
for _, s in ipairs(STATUSES) do redis.call('ZREM', IDX[s], id) end
redis.call('DEL', JOBS .. id, LOGS .. id)
return {status and 'ok' or 'missing', status or ''}
