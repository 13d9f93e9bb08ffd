-- admin_list: pages of a queue's jobs, newest first, from the status indexes (no SCAN).
-- KEYS/ARGV[1..3]: see _admin.lua.
-- ARGV[4] mode   ARGV[5] statuses to include, comma-separated (names from STATUSES, _lib.lua)
-- ARGV[6] "1" to include each job's record in entries, "rows:<cap>" its bounded row
--   (_admin.lua's bounded_record), "0" neither
-- Order: index score descending (the time a job entered its status; run-at for
-- delayed jobs), ties by status order, then id descending, as ZREVRANGE does.
-- mode "page"    ARGV[7] offset  ARGV[8] limit  [ARGV[9] "asc": oldest first, for one
--                status only]  -> {total, entries}
--   One status: ZREVRANGE by rank, O(log n + page). Several: the score of the
--   offset-th job is found by bisection over ZCOUNT (O(log n) per status and
--   step, ~45 steps for ms scores), then the page is read from there.
-- mode "count"   ARGV[7..] probe scores -> {min score, max score, total, then for each
--                probe the number of jobs with a score above it}
-- mode "upto"    ARGV[7] score s ("+inf")  ARGV[8] n  -> {total, the first n entries
--                with score <= s}
-- mode "search"  ARGV[7] lowercase needle  ARGV[8] window  ARGV[9] n  ARGV[10] upper
--                score ("+inf", or only jobs scoring at most this)  -> {total, entries,
--                cut}: the first n jobs at or below upper whose id or name contains
--                needle, looking at no more than `window` jobs (newest first: a merge of
--                the statuses' heads, read in chunks; no sort). cut is '' when every job
--                at or below upper was looked at or n were found, else the score of the
--                last job looked at (the window ran out: older jobs are left to a next
--                search from there).
--                ARGV[11] "1": the needle may be in the job's data too (values up to
--                DATA_MAX bytes; larger ones are not read)  ARGV[12] an event name: only
--                jobs of that event ('' any). An empty needle matches every job.
-- An entry is {id, score, record fields or {}}.
local statuses = {}
for s in string.gmatch(ARGV[5], '[^,]+') do statuses[#statuses + 1] = s end
local with_records, skip, cap = ARGV[6] == '1', bounded_mode(ARGV[6])

local function entry(id, score)
  if skip then return {id, score, bounded_record(id, cap, skip)} end
  return {id, score, with_records and record(id) or {}}
end

local function total()
  local n = 0
  for _, s in ipairs(statuses) do n = n + redis.call('ZCARD', IDX[s]) end
  return n
end

local function count_gt(score)
  local n = 0
  for _, s in ipairs(statuses) do
    n = n + redis.call('ZCOUNT', IDX[s], '(' .. score, '+inf')
  end
  return n
end

local function bounds()
  local lo, hi = nil, nil
  for _, s in ipairs(statuses) do
    local first = redis.call('ZRANGE', IDX[s], 0, 0, 'WITHSCORES')
    local last = redis.call('ZREVRANGE', IDX[s], 0, 0, 'WITHSCORES')
    if first[2] then
      local a, b = tonumber(first[2]), tonumber(last[2])
      if not lo or a < lo then lo = a end
      if not hi or b > hi then hi = b end
    end
  end
  return lo, hi
end

-- the first n ids with score <= upper, merged across statuses: {{id, score}, ...}
local function upto(upper, n)
  local all, sources = {}, 0
  for si, s in ipairs(statuses) do
    local r = redis.call('ZREVRANGEBYSCORE', IDX[s], upper, '-inf', 'WITHSCORES', 'LIMIT', 0, n)
    if #r > 0 then sources = sources + 1 end
    for j = 1, #r, 2 do all[#all + 1] = {r[j], tonumber(r[j + 1]), si, j} end
  end
  if sources > 1 then table.sort(all, function(a, b)
    if a[2] ~= b[2] then return a[2] > b[2] end
    if a[3] ~= b[3] then return a[3] < b[3] end
    return a[4] < b[4]
  end) end  -- one source is already in order
  local out = {}
  for i = 1, math.min(n, #all) do out[i] = all[i] end
  return out
end

local function fmt(x) return string.format('%.0f', x) end

local function page(offset, limit)
  local out = {}
  if #statuses == 1 then
    local order = ARGV[9] == 'asc' and 'ZRANGE' or 'ZREVRANGE'
    local r = redis.call(order, IDX[statuses[1]], offset, offset + limit - 1, 'WITHSCORES')
    for j = 1, #r, 2 do out[#out + 1] = entry(r[j], r[j + 1]) end
    return out
  end
  local upper, skip = '+inf', offset
  if offset > 0 then
    local lo, hi = bounds()
    if not lo then return out end
    -- smallest integer s with count_gt(s) <= offset: the offset-th job's score
    local a, b = math.floor(lo) - 1, math.ceil(hi)
    if count_gt(fmt(a)) <= offset then return out end
    while b - a > 1 do
      local mid = math.floor((a + b) / 2)
      if count_gt(fmt(mid)) <= offset then b = mid else a = mid end
    end
    upper = fmt(b)
    skip = offset - count_gt(upper)
  end
  local ids = upto(upper, skip + limit)
  for i = skip + 1, #ids do out[#out + 1] = entry(ids[i][1], ids[i][2]) end
  return out
end

local mode = ARGV[4]
if mode == 'page' then
  return {total(), page(tonumber(ARGV[7]), tonumber(ARGV[8]))}
elseif mode == 'count' then
  local lo, hi = bounds()
  local out = {lo and fmt(lo) or '', hi and fmt(hi) or '', total()}
  for i = 7, #ARGV do out[#out + 1] = count_gt(ARGV[i]) end
  return out
elseif mode == 'upto' then
  local out = {}
  for _, e in ipairs(upto(ARGV[7], tonumber(ARGV[8]))) do out[#out + 1] = entry(e[1], e[2]) end
  return {total(), out}
end
-- search: a lazy merge of the statuses' indexes, newest first, in chunks of CHUNK
local CHUNK = 200
local needle, window, n, upper = ARGV[7], tonumber(ARGV[8]), tonumber(ARGV[9]), ARGV[10]
local heads = {}
for si, s in ipairs(statuses) do  -- read = rank of the next job to read (by rank: O(log n))
  local skip = upper == '+inf' and 0 or redis.call('ZCOUNT', IDX[s], '(' .. upper, '+inf')
  heads[si] = {key = IDX[s], buf = {}, pos = 1, read = skip, done = false}
end

local function fill(h)  -- the next chunk of h's index; h.done once it has no more
  local r = redis.call('ZREVRANGE', h.key, h.read, h.read + CHUNK - 1, 'WITHSCORES')
  h.read = h.read + #r / 2
  h.buf, h.pos, h.done = r, 1, #r < 2 * CHUNK
end

local function peek(h)  -- score of h's next job, or nil when it has none left
  if h.pos > #h.buf then
    if h.done then return nil end
    fill(h)
    if #h.buf == 0 then return nil end
  end
  return tonumber(h.buf[h.pos + 1])
end

local in_data, event, DATA_MAX = ARGV[11] == '1', ARGV[12] or '', 65536

local function matches(id)
  local key, name = JOBS .. id, nil
  if event ~= '' then
    name = redis.call('HGET', key, 'name') or ''
    if name ~= event then return false end
  end
  if string.find(string.lower(id), needle, 1, true) then return true end
  name = name or redis.call('HGET', key, 'name') or ''
  if string.find(string.lower(name), needle, 1, true) then return true end
  if not in_data then return false end
  local size = redis.call('HSTRLEN', key, 'data')
  if size == 0 or size > DATA_MAX then return false end
  return string.find(string.lower(redis.call('HGET', key, 'data')), needle, 1, true) ~= nil
end

local out, seen, cut = {}, 0, ''
while #out < n do
  local best, best_score = nil, nil
  for _, h in ipairs(heads) do  -- ties: status order, as the other modes
    local score = peek(h)
    if score and (not best_score or score > best_score) then best, best_score = h, score end
  end
  if not best then break end
  if seen >= window then cut = string.format('%.0f', best_score) break end
  local id = best.buf[best.pos]
  best.pos = best.pos + 2
  seen = seen + 1
  if matches(id) then out[#out + 1] = entry(id, best_score) end
end
return {total(), out, cut}
