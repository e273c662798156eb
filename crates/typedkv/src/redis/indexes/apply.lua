-- Applies a batch of indexed writes atomically (typedkv's index::ops::IndexedOp).
-- KEYS[2i-1], KEYS[2i]      index i's members and expiries (i = 1..n)
-- KEYS[2n+2o-1], KEYS[2n+2o] op o's entity key and record key
-- ARGV: n, entity prefix, n index names, n kinds ('e' equality, 'u' unique, 'r' range),
--   op count, then per op: guard ('always' 'absent' 'present' 'bytes' 'sha1'), expected,
--   action ('set' 'del'), value, expiry ('px' 'keep' 'none'), ms, then per index: member
--   count, members.
-- Returns {1, deletes of existing keys}; {0, op, current bytes or false} when op's guard
-- failed; {2, ...} or {3, ...} when op would take a unique value another op of the batch
-- or another entity's member holds (see taken_claim). In those cases nothing is written.
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
  op.id = string.sub(op.key, #entity_prefix + 1)
  ops[o] = op
end

-- The first unique claim of `ops` (each {id, key, action, members[i]}) that another op of
-- the batch makes for another id, as {2, op, index, value prefix}; or that a member of
-- another live entity holds, which the batch does not rewrite without it, as {3, op, index,
-- value prefix, member, that entity's key, its bytes}: whether its current value still gives
-- the member, only the client can tell (it decodes). Members of entities that expired or
-- are gone are removed on the way (they free the value). nil when every claim is free.
local function taken_claim(ops, n, kinds)
  local claimed = {}
  for o, op in ipairs(ops) do
    for i = 1, n do
      if kinds[i] == 'u' and op.action == 'set' then
        claimed[i] = claimed[i] or {}
        for _, m in ipairs(op.members[i]) do
          local prefix = string.sub(m, 1, #m - #op.id)
          if claimed[i][prefix] and claimed[i][prefix] ~= op.id then return {2, o, i, prefix} end
          claimed[i][prefix] = op.id
          local holders = redis.call('ZRANGEBYLEX', KEYS[2 * i - 1], '[' .. prefix,
            '(' .. prefix .. '\255')
          for _, h in ipairs(holders) do
            local holder = string.sub(h, #prefix + 1)
            if holder ~= op.id then
              local expires = redis.call('ZSCORE', KEYS[2 * i], h)
              local key = entity_prefix .. holder
              local cur = (not expires or tonumber(expires) > now()) and redis.call('GET', key)
              if cur then
                local rewritten = false
                for _, other in ipairs(ops) do
                  if other.id == holder then
                    rewritten = true
                    for _, om in ipairs(other.members[i]) do
                      if om == h and other.action == 'set' then rewritten = false end
                    end
                  end
                end
                if not rewritten then return {3, o, i, prefix, h, key, cur} end
              else
                redis.call('ZREM', KEYS[2 * i - 1], h)
                redis.call('ZREM', KEYS[2 * i], h)
              end
            end
          end
        end
      end
    end
  end
  return nil
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

-- 2. Expired members leave. `timed[i]`: whether index i has expiring members at all
-- (most stores have none: then no call touches its expiry set).
local timed = {}
for i = 1, n do timed[i] = purge_expired(i) end

-- 3. Unique claims.
local taken = taken_claim(ops, n, kinds)
if taken then return taken end

-- 4. The writes. Only what changes is touched: members the entity keeps stay, and its
-- record is rewritten only when its members change. `changed[i]`: index i gained a member
-- or a member's expiry changed (its own TTL may need to follow, step 5).
local existed = 0
local changed = {}
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
      local i, m = entry_index(entry, by_name)
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
      local i, m = entry_index(entry, by_name)
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

-- 5. Index TTLs follow their members (an index without expiring members has none).
for i = 1, n do
  if changed[i] and timed[i] then follow_ttl(i) end
end
return {1, existed}
