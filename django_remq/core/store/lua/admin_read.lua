-- admin_read: job records (and optionally their logs), read in one step.
-- KEYS/ARGV[1..3]: see _admin.lua.   ARGV[4] "1" to include logs, "0" not, or a bounded
-- mode ("rows:<cap>": no logs; "preview:<cap>": logs, each line over cap replaced; see
-- _admin.lua's bounded_record)   ARGV[5..] job ids
-- Returns one {id, record fields, log lines} per id; a missing job has no fields,
-- a key that is not a hash reads as {'__corrupt__', its type} (see _admin.lua).
local skip, cap = bounded_mode(ARGV[4])
local out = {}
for i = 5, #ARGV do
  local id = ARGV[i]
  if not skip then
    out[#out + 1] = {id, record(id), ARGV[4] == '1' and log_lines(id) or {}}
  else
    out[#out + 1] = {id, bounded_record(id, cap, skip),
                     skip == NO_SKIP and bounded_logs(id, cap) or {}}
  end
end
return out
