-- admin_bulk: one bounded batch of a bulk operation on the oldest jobs of a status.
-- KEYS/ARGV[1..3]: see _admin.lua.
-- ARGV[4] action: "retry" (failed/cancelled jobs run again) or "delete"
-- ARGV[5] status   ARGV[6] only jobs whose index score (ms) is <= this
-- ARGV[7] batch size
-- Returns the number of jobs handled; the caller repeats until it returns 0.
-- The score bound keeps a bulk retry from picking up jobs that failed again meanwhile.
local action, status = ARGV[4], ARGV[5]
local ids = redis.call('ZRANGEBYSCORE', IDX[status], '-inf', ARGV[6], 'LIMIT', 0, tonumber(ARGV[7]))
for _, id in ipairs(ids) do
  local actual = redis.call('HGET', JOBS .. id, 'status')
  if actual ~= status then
    redis.call('ZREM', IDX[status], id)  -- a stale index entry (the record expired)
  elseif action == 'retry' then
    rerun(id, status)
  else
    redis.call('ZREM', IDX[status], id)
    redis.call('DEL', JOBS .. id, LOGS .. id)
  end
end
return #ids
