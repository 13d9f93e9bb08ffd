-- admin_stats: a queue's job counts per status (ZCARD: O(1) each) and its paused flag.
-- KEYS/ARGV[1..3]: see _admin.lua.
-- Returns {paused (0/1), count per status in STATUSES order (_lib.lua)...}.
local out = {redis.call('EXISTS', KEYS[2])}
for _, s in ipairs(STATUSES) do out[#out + 1] = redis.call('ZCARD', IDX[s]) end
return out
