-- watch: what a gateway subscriber sees first, and (ARGV[1] == "1") the record's
-- "watch" flag: the workers' sink asks for that field with each job to run (an extra
-- field, see consumers/delivery.py), so the job's next deliveries carry it and its live
-- events go to its followers without waiting for the watched registry. Only an
-- existing record is flagged (no stub hashes).
-- KEYS[1] the job's record
-- ARGV[1] "1" set the flag, "0" only read
-- Returns false without a record, else {status, progress, owner, finished_at, errors, name}.
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
if ARGV[1] == '1' then redis.call('HSET', KEYS[1], 'watch', '1') end
return redis.call('HMGET', KEYS[1], 'status', 'progress', 'owner', 'finished_at', 'errors', 'name')
