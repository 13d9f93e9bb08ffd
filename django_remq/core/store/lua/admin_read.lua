-- admin_read: job records (and optionally their logs), read in one step.
-- KEYS/ARGV[1..3]: see _admin.lua.   ARGV[4] "1" to include logs   ARGV[5..] job ids
-- Returns one {id, record fields, log lines} per id; a missing job has no fields,
-- a key that is not a hash reads as {'__corrupt__', its type} (see _admin.lua).
local out = {}
for i = 5, #ARGV do
  local id = ARGV[i]
  out[#out + 1] = {id, record(id), ARGV[4] == '1' and log_lines(id) or {}}
end
return out
