-- admin_read: job records (and optionally their logs), read in one step.
-- KEYS/ARGV[1..3]: see _admin.lua.   ARGV[4] "1" to include logs   ARGV[5..] job ids
-- Returns one {id, record fields, log lines} per id; a missing job has no fields.
local out = {}
for i = 5, #ARGV do
  local id = ARGV[i]
  local logs = ARGV[4] == '1' and redis.call('LRANGE', LOGS .. id, 0, -1) or {}
  out[#out + 1] = {id, redis.call('HGETALL', JOBS .. id), logs}
end
return out
