-- renew: a live worker's heartbeat; keeps its running jobs from being reclaimed.
-- Resets the idle time of every entry this consumer still owns (XCLAIM JUSTID does
-- not count as a delivery) and pushes the records' lock_until forward. Entries
-- another worker has taken over are not touched, so two workers never fight.
-- KEYS: the queue's standard script keys (1 stream, 2 paused flag, 3..9 status indexes)
-- ARGV[1] job key prefix  ARGV[2] group  ARGV[3] consumer  ARGV[4] lock_ms
-- ARGV[5..] job ids this worker is running in this queue
-- Returns {entry ids this consumer owns, ids of those jobs someone asked to cancel
-- (Sdk.cancel_job sets ``cancel_requested``)}.
local now = now_ms()
local owned = {}
local pending = redis.call('XPENDING', KEYS[1], ARGV[2], '-', '+', 100000, ARGV[3])
for _, p in ipairs(pending) do owned[#owned + 1] = p[1] end
for i = 1, #owned, 1000 do
  local args = {'XCLAIM', KEYS[1], ARGV[2], ARGV[3], 0}
  for j = i, math.min(i + 999, #owned) do args[#args + 1] = owned[j] end
  args[#args + 1] = 'JUSTID'
  redis.call(unpack(args))
end
local cancel = {}
for i = 5, #ARGV do
  local key = ARGV[1] .. ARGV[i]
  local rec = redis.call('HMGET', key, 'worker', 'cancel_requested')
  if rec[1] == ARGV[3] then
    redis.call('HSET', key, 'lock_until', now + tonumber(ARGV[4]))
  end
  if rec[2] and rec[2] ~= '0' and rec[2] ~= '' then cancel[#cancel + 1] = ARGV[i] end
end
return {owned, cancel}
