-- admin_restore: requeue a job from the dead-letter queue.
-- KEYS/ARGV[1..3]: see _admin.lua.   ARGV[4] job id
-- ARGV[5..] field/value pairs of the record as the DLQ kept it, used when the
-- record itself has expired meanwhile.
-- Returns {code, status before, record}; code "ok", or "noop" when the job is
-- already on its way (waiting, delayed, processing, paused): nothing is changed; or
-- {'lane', '', {}, priority} (see ask_lane).
local id = ARGV[4]
local key = JOBS .. id
local status = redis.call('HGET', key, 'status')
if status and not FINAL[status] then
  return reply('noop', id, status)
end
local lane = lane_of(key)
if not status then  -- the record is rebuilt from the DLQ's copy: its priority counts
  for i = 5, #ARGV - 1, 2 do if ARGV[i] == 'priority' then lane = ARGV[i + 1] end end
end
local ask = ask_lane(lane)
if ask then return ask end
if not status and #ARGV >= 6 then redis.call('HSET', key, unpack(ARGV, 5, #ARGV)) end
redis.call('HSET', key, 'id', id)
rerun(id, status)
return reply('ok', id, status or '')
