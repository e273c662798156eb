-- Applies a batch of indexed writes atomically (typedkv's index::ops::IndexedOp).
-- KEYS[2i-1], KEYS[2i]      index i's members and expiries (i = 1..n)
-- KEYS[2n+2o-1], KEYS[2n+2o] op o's entity key and record key
-- ARGV: n, entity prefix, n index names, n kinds ('e' equality, 'u' unique, 'r' range),
--   op count, then per op: guard ('always' 'absent' 'present' 'bytes' 'sha1'), expected,
--   action ('set' 'del'), value, expiry ('px' 'keep' 'none'), ms, then per index: member
--   count, members.
-- Returns {1, deletes of existing keys}, {0, op, current bytes or false} when op's guard
-- failed, or {2, op, index, value prefix} when op would take a unique value another entity
-- holds; in those two cases nothing is written.
-- Each redis.call costs microseconds: calls are saved where nothing would change.
-- The server's clock in milliseconds, read once and only when an expiry is involved.
local now_ms = false
local function now()
  if not now_ms then
    local t = redis.call('TIME')
    now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return now_ms
end
local a = 0
local function arg() a = a + 1; return ARGV[a] end
local n = tonumber(arg())
local entity_prefix = arg()
local names, kinds, by_name = {}, {}, {}
for i = 1, n do names[i] = arg(); by_name[names[i]] = i end
for i = 1, n do kinds[i] = arg() end
local ops = {}
for o = 1, tonumber(arg()) do
  local op = {key = KEYS[2 * n + 2 * o - 1], record = KEYS[2 * n + 2 * o], guard = arg(),
    expected = arg(), action = arg(), value = arg(), expiry = arg(), ms = tonumber(arg()),
    members = {}}
  for i = 1, n do
    local m = {}
    for j = 1, tonumber(arg()) do m[j] = arg() end
    op.members[i] = m
  end
  ops[o] = op
end

-- ZREM / SADD of many members, in chunks (Lua's unpack has a limit).
local function each_chunk(list, f)
  for s = 1, #list, 1000 do f(unpack(list, s, math.min(s + 999, #list))) end
end

-- 1. Guards, before anything is written.
for o, op in ipairs(ops) do
  if op.guard ~= 'always' then
    local cur = redis.call('GET', op.key)
    local ok
    if op.guard == 'absent' then ok = not cur
    elseif op.guard == 'present' then ok = cur ~= false
    elseif op.guard == 'bytes' then ok = cur == op.expected
    else ok = cur ~= false and redis.sha1hex(cur) == op.expected end
    if not ok then return {0, o, cur} end
  end
end

-- 2. Expired members leave, a bounded number per index and call. `timed[i]`: whether index
-- i has members with an expiry at all (most stores have none: then no call touches it).
local timed = {}
for i = 1, n do
  timed[i] = redis.call('ZCARD', KEYS[2 * i]) > 0
  if timed[i] then
    local dead = redis.call('ZRANGEBYSCORE', KEYS[2 * i], '-inf', now(), 'LIMIT', 0, 256)
    if #dead > 0 then
      redis.call('ZREM', KEYS[2 * i - 1], unpack(dead))
      redis.call('ZREM', KEYS[2 * i], unpack(dead))
    end
  end
end

-- 3. Unique claims: a value is taken when another live entity holds it, or another op of
-- this batch claims it for another id.
local claimed = {}
for o, op in ipairs(ops) do
  local id = string.sub(op.key, #entity_prefix + 1)
  for i = 1, n do
    if kinds[i] == 'u' and op.action == 'set' then
      claimed[i] = claimed[i] or {}
      for _, m in ipairs(op.members[i]) do
        local prefix = string.sub(m, 1, #m - #id)
        if claimed[i][prefix] and claimed[i][prefix] ~= id then return {2, o, i, prefix} end
        claimed[i][prefix] = id
        local holders = redis.call('ZRANGEBYLEX', KEYS[2 * i - 1], '[' .. prefix,
          '(' .. prefix .. '\255')
        for _, h in ipairs(holders) do
          local holder = string.sub(h, #prefix + 1)
          if holder ~= id then
            local expires = redis.call('ZSCORE', KEYS[2 * i], h)
            local alive = (not expires or tonumber(expires) > now())
              and redis.call('EXISTS', entity_prefix .. holder) == 1
            if alive then
              -- Unless this batch rewrites the holder without the value.
              local rewritten = false
              for _, other in ipairs(ops) do
                if other.key == entity_prefix .. holder then
                  rewritten = true
                  for _, om in ipairs(other.members[i]) do
                    if om == h and other.action == 'set' then rewritten = false end
                  end
                end
              end
              if not rewritten then return {2, o, i, prefix} end
            else
              -- A leftover of an entity that is gone: it frees the value.
              redis.call('ZREM', KEYS[2 * i - 1], h)
              redis.call('ZREM', KEYS[2 * i], h)
            end
          end
        end
      end
    end
  end
end

-- 4. The writes. Only what changes is touched: members the entity keeps stay, and its
-- record is rewritten only when its members change. `changed[i]`: index i gained a member
-- or a member's expiry changed (its own TTL may need to follow, step 5).
local existed = 0
local changed = {}
local function entry_index(entry)
  local z = string.find(entry, '\0', 1, true)
  local i = z and by_name[string.sub(entry, 1, z - 1)]
  if i then return i, string.sub(entry, z + 1) end
end
for _, op in ipairs(ops) do
  local old = redis.call('SMEMBERS', op.record)
  local new_entries, kept, kept_count = {}, {}, 0
  if op.action == 'set' then
    for i = 1, n do
      for _, m in ipairs(op.members[i]) do new_entries[#new_entries + 1] = names[i] .. '\0' .. m end
    end
  end
  local wanted = {}
  for _, entry in ipairs(new_entries) do wanted[entry] = true end
  for _, entry in ipairs(old) do
    if wanted[entry] then
      kept[entry], kept_count = true, kept_count + 1
    else
      local i, m = entry_index(entry)
      if i then
        redis.call('ZREM', KEYS[2 * i - 1], m)
        if timed[i] then redis.call('ZREM', KEYS[2 * i], m) end
      end
    end
  end
  if op.action == 'del' then
    if #old > 0 then redis.call('DEL', op.record) end
    existed = existed + redis.call('DEL', op.key)
  else
    local expires_at = false
    if op.expiry == 'px' then
      redis.call('SET', op.key, op.value, 'PX', op.ms)
      expires_at = now() + op.ms
    elseif op.expiry == 'keep' then
      local pttl = redis.call('PTTL', op.key)
      redis.call('SET', op.key, op.value, 'KEEPTTL')
      if pttl > 0 then expires_at = now() + pttl end
    else
      redis.call('SET', op.key, op.value)
    end
    local had_expiry = false
    for _, entry in ipairs(new_entries) do
      local i, m = entry_index(entry)
      if not kept[entry] then
        redis.call('ZADD', KEYS[2 * i - 1], 0, m)
        changed[i] = true
      end
      if expires_at then
        redis.call('ZADD', KEYS[2 * i], expires_at, m)
        timed[i], changed[i] = true, true
      elseif timed[i] and kept[entry] and redis.call('ZREM', KEYS[2 * i], m) == 1 then
        had_expiry, changed[i] = true, true
      end
    end
    if kept_count ~= #old or #new_entries ~= #old then
      -- Members changed: the record anew.
      if #old > 0 then redis.call('DEL', op.record) end
      each_chunk(new_entries, function(...) redis.call('SADD', op.record, ...) end)
    end
    if #new_entries > 0 then
      if expires_at then
        redis.call('PEXPIREAT', op.record, expires_at)
      elseif had_expiry then
        redis.call('PERSIST', op.record)
      end
    end
  end
end

-- 5. An index whose every member expires lives no longer than its last member, so indexes
-- of TTL'd entities never outlive them even when nothing touches them again. (An index with
-- no expiring member has no TTL: there is nothing to do for it.)
for i = 1, n do
  if changed[i] and timed[i] then
    local members, expiries = KEYS[2 * i - 1], KEYS[2 * i]
    local count = redis.call('ZCARD', members)
    if count > 0 and redis.call('ZCARD', expiries) == count then
      local last = redis.call('ZRANGE', expiries, -1, -1, 'WITHSCORES')
      redis.call('PEXPIREAT', members, last[2])
      redis.call('PEXPIREAT', expiries, last[2])
    else
      redis.call('PERSIST', members)
      redis.call('PERSIST', expiries)
    end
  end
end
return {1, existed}
