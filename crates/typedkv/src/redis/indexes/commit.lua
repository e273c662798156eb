-- Last step of an indexed write on a cluster store without hash tag, once the values were
-- written (or not): records and members follow each op's outcome, and the leases go.
-- KEYS[2i-1], KEYS[2i]      index i's members and expiries (i = 1..n)
-- KEYS[2n+2o-1], KEYS[2n+2o] op o's record and lease keys
-- ARGV: n, n index names, token, op count, then per op: outcome ('done': the value was
--   written or deleted; 'unmet': its guard failed, nothing written; 'unknown': the write's
--   fate is unknown), the value's PTTL after the write (ms; <= 0: none), then per index:
--   member count, members (after the write).
-- Returns 1.
local a = 0
local function arg() a = a + 1; return ARGV[a] end
local n = tonumber(arg())
local names, by_name = {}, {}
for i = 1, n do names[i] = arg(); by_name[names[i]] = i end
local token = arg()
local changed = {}
local function remove(entry)
  local i, m = entry_index(entry, by_name)
  if i then
    redis.call('ZREM', KEYS[2 * i - 1], m)
    redis.call('ZREM', KEYS[2 * i], m)
  end
end
for o = 1, tonumber(arg()) do
  local record, lease = KEYS[2 * n + 2 * o - 1], KEYS[2 * n + 2 * o]
  local outcome, pttl = arg(), tonumber(arg())
  local new, wanted = {}, {}
  for i = 1, n do
    for j = 1, tonumber(arg()) do
      local entry = names[i] .. '\0' .. arg()
      new[#new + 1] = entry
      wanted[entry] = true
    end
  end
  local old = redis.call('SMEMBERS', record)
  local had = {}
  for _, entry in ipairs(old) do had[entry] = true end
  if outcome == 'done' then
    for _, entry in ipairs(old) do if not wanted[entry] then remove(entry) end end
    redis.call('DEL', record)
    each_chunk(new, function(...) redis.call('SADD', record, ...) end)
    for _, entry in ipairs(new) do
      local i, m = entry_index(entry, by_name)
      -- Added by `begin` already; again, in case a sweep removed it while it was unrecorded
      -- and its lease had run out (a slow writer).
      redis.call('ZADD', KEYS[2 * i - 1], 0, m)
      if pttl > 0 then
        redis.call('ZADD', KEYS[2 * i], now() + pttl, m)
      else
        redis.call('ZREM', KEYS[2 * i], m)
      end
      changed[i] = true
    end
    if #new > 0 and pttl > 0 then redis.call('PEXPIREAT', record, now() + pttl) end
  elseif outcome == 'unmet' then
    for _, entry in ipairs(new) do if not had[entry] then remove(entry) end end
  else
    -- Either value may be stored: both sets of members stay recorded until the next write.
    each_chunk(new, function(...) redis.call('SADD', record, ...) end)
    for _, entry in ipairs(new) do
      local i, m = entry_index(entry, by_name)
      redis.call('ZADD', KEYS[2 * i - 1], 0, m)
    end
  end
  if redis.call('GET', lease) == token then redis.call('DEL', lease) end
end
for i = 1, n do
  if changed[i] then follow_ttl(i) end
end
return 1
