-- renew: a live worker's heartbeat; keeps the jobs it runs from being reclaimed.
-- Resets the idle time of the entries of the jobs it runs, if this consumer still owns
-- them (XCLAIM JUSTID does not count as a delivery), and pushes the records' lock_until
-- forward. Nothing else is renewed: an entry this consumer holds but runs no task for
-- goes idle and is reclaimed (never stranded). Entries another worker has taken over
-- are not touched, so two workers never fight.
-- KEYS: the queue's standard script keys (1 stream, 2 paused flag, 3..9 status indexes)
-- ARGV[1] job key prefix  ARGV[2] group  ARGV[3] consumer  ARGV[4] lock_ms
-- ARGV[5..] pairs: job id, its entry id -- the jobs this worker runs in this queue
-- Returns {entry ids among those this consumer owns, ids of those jobs someone asked
-- to cancel (Sdk.cancel_job sets ``cancel_requested``)}.
local now = now_ms()
local mine = {}
local pending = redis.call('XPENDING', KEYS[1], ARGV[2], '-', '+', 100000, ARGV[3])
for _, p in ipairs(pending) do mine[p[1]] = true end
local owned, cancel = {}, {}
for i = 5, #ARGV - 1, 2 do
  local id, eid = ARGV[i], ARGV[i + 1]
  if mine[eid] then owned[#owned + 1] = eid end
  local key = ARGV[1] .. id
  local rec = redis.call('HMGET', key, 'worker', 'cancel_requested')
  if rec[1] == ARGV[3] then
    redis.call('HSET', key, 'lock_until', now + tonumber(ARGV[4]))
  end
  if rec[2] and rec[2] ~= '0' and rec[2] ~= '' then cancel[#cancel + 1] = id end
end
for i = 1, #owned, 1000 do
  local args = {'XCLAIM', KEYS[1], ARGV[2], ARGV[3], 0}
  for j = i, math.min(i + 999, #owned) do args[#args + 1] = owned[j] end
  args[#args + 1] = 'JUSTID'
  redis.call(unpack(args))
end
return {owned, cancel}
