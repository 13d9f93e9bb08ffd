-- update: a running job's log lines and progress, in the order the handler made them.
-- Dropped once the job is no longer processing, so a late write cannot bring back
-- a record that retention (or a delete) removed.
-- KEYS: 1 the job record   2 the job's log list
-- ARGV[1] max log lines kept (oldest dropped first)
-- ARGV[2..] pairs: kind ("log" | "progress"), JSON value
-- Returns 1 when applied, 0 when the job was not processing.
-- The record's `logged` field says the job has log lines (set once, at its first line):
-- finish.lua sets the log list's retention only then, one call less for the many jobs
-- that never log (debounce_emit.lua's lines go with the record's `debounced` count).
local rec = redis.call('HMGET', KEYS[1], 'status', 'logged')
if rec[1] ~= 'processing' then return 0 end
local logged = false
for i = 2, #ARGV, 2 do
  if ARGV[i] == 'log' then
    redis.call('RPUSH', KEYS[2], ARGV[i + 1])
    logged = true
  else
    redis.call('HSET', KEYS[1], 'progress', ARGV[i + 1])
  end
end
if logged then
  redis.call('LTRIM', KEYS[2], -tonumber(ARGV[1]), -1)
  if not rec[2] then redis.call('HSET', KEYS[1], 'logged', 1) end
end
return 1
