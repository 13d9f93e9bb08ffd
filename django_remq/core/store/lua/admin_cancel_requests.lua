-- admin_cancel_requests: which of these running jobs someone asked to cancel.
-- (The worker's hook for cooperative cancellation: see Sdk.cancel_job.)
-- KEYS/ARGV[1..3]: see _admin.lua.   ARGV[4..] job ids
-- Returns the ids whose record has the cancel_requested field.
local out = {}
for i = 4, #ARGV do
  if redis.call('HEXISTS', JOBS .. ARGV[i], 'cancel_requested') == 1 then
    out[#out + 1] = ARGV[i]
  end
end
return out
