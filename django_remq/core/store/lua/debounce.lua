-- debounce: leading-edge claim of a debounce window by a job about to run.
-- The first job to claim the key runs and holds the window for window_ms; any
-- other job with the same key inside the window is skipped. The holder token is
-- "<job id>:<emit timestamp>", so a redelivery of the same job (worker crash) is
-- still its own holder, while a later job re-emitted with the same id is not.
-- KEYS[1] the debounce key
-- ARGV[1] holder token   ARGV[2] window ms
-- Returns {1} when the caller holds the window, {0, holder token, ms left} otherwise.
local cur = redis.call('GET', KEYS[1])
if not cur then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return {1}
end
if cur == ARGV[1] then return {1} end
return {0, cur, redis.call('PTTL', KEYS[1])}
