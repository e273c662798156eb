-- Applies a batch of indexed writes atomically (typedkv's Backend::index_apply).
-- KEYS[2i-1], KEYS[2i]      index i's members and expiries (i = 1..n)
-- KEYS[2n+2o-1], KEYS[2n+2o] op o's entity key and record key
-- ARGV: n, entity prefix, n index names, n kinds ('e' equality, 'u' unique, 'r' range),
--   op count, then per op: guard ('always' 'absent' 'present' 'bytes' 'sha1'), expected,
--   action ('set' 'del'), value, expiry ('px' 'keep' 'none'), ms, then per index: member
--   count, members.
-- Returns {1, deletes of existing keys}; {0, op, current bytes or false} when op's guard
-- failed; {2, ...} or {3, ...} when op would take a unique value another op of the batch
-- or another entity's member holds (see taken_claim). In those cases nothing is written.
--
-- Written to allocate little, because every table, closure and string a call builds is
-- server time: ops stay in ARGV and are read by position, the unique-claim helpers are made
-- only for stores with a unique index, and an entity whose entries do not change costs its
-- record's read and its SET, plus one ZCARD per index. (redis-server under callgrind, a
-- rewrite with one equality index: 102k instructions per call with ops copied into tables,
-- 75k so; see BENCHMARKS.md.)

local n = tonumber(ARGV[1])
local entity_prefix = ARGV[2]
-- prefix[i]: how index i's entries start in a record (`name \0`); by_name: i by name.
local prefix, by_name, has_unique = {}, {}, false
for i = 1, n do
  prefix[i] = ARGV[2 + i] .. '\0'
  by_name[ARGV[2 + i]] = i
  if ARGV[2 + n + i] == 'u' then has_unique = true end
end
local op_count = tonumber(ARGV[3 + 2 * n])
-- at[o]: where op o's fields start in ARGV (guard, expected, action, value, expiry, ms, then
-- per index a member count and the members).
local at = {}
local a = 4 + 2 * n
for o = 1, op_count do
  at[o] = a
  a = a + 6
  for _ = 1, n do a = a + 1 + tonumber(ARGV[a]) end
end

-- 1. Guards, before anything is written.
for o = 1, op_count do
  local p = at[o]
  local guard = ARGV[p]
  if guard ~= 'always' then
    local cur = redis.call('GET', KEYS[2 * n + 2 * o - 1])
    local ok
    if guard == 'absent' then ok = not cur
    elseif guard == 'present' then ok = cur ~= false
    elseif guard == 'bytes' then ok = cur == ARGV[p + 1]
    else ok = cur ~= false and redis.sha1hex(cur) == ARGV[p + 1] end
    if not ok then return {0, o, cur} end
  end
end

-- 2. Expired members leave. `timed[i]`: whether index i has expiring members at all
-- (most stores have none: then no call touches its expiry set).
local timed, any_timed = {}, false
for i = 1, n do
  timed[i] = purge_expired(i)
  any_timed = any_timed or timed[i]
end

-- 3. Unique claims (its helpers are made only here: each closure a call makes costs it).
if has_unique then
  -- Where op o's members of index i are in ARGV: the first one's position, and how many.
  local function members(o, i)
    local p = at[o] + 6
    for _ = 2, i do p = p + 1 + tonumber(ARGV[p]) end
    return p + 1, tonumber(ARGV[p])
  end

  local function id_of(o) return string.sub(KEYS[2 * n + 2 * o - 1], #entity_prefix + 1) end

  -- The first unique claim of the batch that another op of it makes for another id, as
  -- {2, op, index, value prefix}; or that a member of another live entity holds, which the
  -- batch does not rewrite without it, as {3, op, index, value prefix, member, that entity's
  -- key, its bytes}: whether its current value still gives the member, only the client can
  -- tell (it decodes). Members of entities that expired or are gone are removed on the way
  -- (they free the value). nil when every claim is free.
  local function taken_claim()
    local claimed = {}
    for o = 1, op_count do
      if ARGV[at[o] + 2] == 'set' then
        local id = id_of(o)
        for i = 1, n do
          if ARGV[2 + n + i] == 'u' then
            claimed[i] = claimed[i] or {}
            local first, count = members(o, i)
            for j = first, first + count - 1 do
              local m = ARGV[j]
              local value = string.sub(m, 1, #m - #id)
              if claimed[i][value] and claimed[i][value] ~= id then return {2, o, i, value} end
              claimed[i][value] = id
              local holders = redis.call('ZRANGEBYLEX', KEYS[2 * i - 1], '[' .. value,
                '(' .. value .. '\255')
              for _, h in ipairs(holders) do
                local holder = string.sub(h, #value + 1)
                if holder ~= id then
                  local expires = redis.call('ZSCORE', KEYS[2 * i], h)
                  local key = entity_prefix .. holder
                  local cur = (not expires or tonumber(expires) > now()) and redis.call('GET', key)
                  if cur then
                    -- Rewritten by the batch without member h: then it frees the value.
                    local rewritten = false
                    for other = 1, op_count do
                      if id_of(other) == holder then
                        rewritten = true
                        if ARGV[at[other] + 2] == 'set' then
                          local f, c = members(other, i)
                          for k = f, f + c - 1 do
                            if ARGV[k] == h then rewritten = false end
                          end
                        end
                      end
                    end
                    if not rewritten then return {3, o, i, value, h, key, cur} end
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
    end
    return nil
  end

  local taken = taken_claim()
  if taken then return taken end
end

-- 4. The writes. Only what changes is touched: entries the entity keeps stay, and its
-- record is rewritten only when its entries change. `changed[i]`: index i gained a member
-- or a member's expiry changed (its own TTL may need to follow, step 5).
local existed = 0
local changed = {}
for o = 1, op_count do
  local p = at[o]
  local key, record = KEYS[2 * n + 2 * o - 1], KEYS[2 * n + 2 * o]
  local set = ARGV[p + 2] == 'set'
  local old = redis.call('SMEMBERS', record)
  -- wanted[entry]: 1 for an entry the entity gains, 2 for one it keeps; count: how many.
  local wanted, count, kept = {}, 0, 0
  if set then
    local q = p + 6
    for i = 1, n do
      for j = q + 1, q + tonumber(ARGV[q]) do
        local entry = prefix[i] .. ARGV[j]
        if not wanted[entry] then wanted[entry], count = 1, count + 1 end
      end
      q = q + 1 + tonumber(ARGV[q])
    end
  end
  for _, entry in ipairs(old) do
    if wanted[entry] then
      wanted[entry], kept = 2, kept + 1
    else
      local i, m = entry_index(entry, by_name)
      if i then
        redis.call('ZREM', KEYS[2 * i - 1], m)
        if timed[i] then redis.call('ZREM', KEYS[2 * i], m) end
      end
    end
  end
  if not set then
    if #old > 0 then redis.call('DEL', record) end
    existed = existed + redis.call('DEL', key)
  else
    local value, expiry, ms = ARGV[p + 3], ARGV[p + 4], tonumber(ARGV[p + 5])
    local expires_at = false
    if expiry == 'px' then
      redis.call('SET', key, value, 'PX', ms)
      expires_at = now() + ms
    elseif expiry == 'keep' then
      local pttl = redis.call('PTTL', key)
      redis.call('SET', key, value, 'KEEPTTL')
      if pttl > 0 then expires_at = now() + pttl end
    else
      redis.call('SET', key, value)
    end
    local had_expiry = false
    -- Each entry again, unless none is new and no expiry is involved (the common rewrite).
    if kept < count or expires_at or any_timed then
      local q = p + 6
      for i = 1, n do
        for j = q + 1, q + tonumber(ARGV[q]) do
          local m = ARGV[j]
          local entry = prefix[i] .. m
          local state = wanted[entry]
          if state == 1 then
            redis.call('ZADD', KEYS[2 * i - 1], 0, m)
            wanted[entry], changed[i] = 3, true
          end
          if expires_at then
            redis.call('ZADD', KEYS[2 * i], expires_at, m)
            timed[i], changed[i] = true, true
          elseif timed[i] and state == 2 and redis.call('ZREM', KEYS[2 * i], m) == 1 then
            had_expiry, changed[i] = true, true
          end
        end
        q = q + 1 + tonumber(ARGV[q])
      end
    end
    if kept ~= #old or count ~= #old then
      -- Entries changed: the record anew.
      if #old > 0 then redis.call('DEL', record) end
      if count > 0 then
        local entries = {}
        for entry in pairs(wanted) do entries[#entries + 1] = entry end
        each_chunk(entries, function(...) redis.call('SADD', record, ...) end)
      end
    end
    if count > 0 then
      if expires_at then
        redis.call('PEXPIREAT', record, expires_at)
      elseif had_expiry then
        redis.call('PERSIST', record)
      end
    end
  end
end

-- 5. Index TTLs follow their members (an index without expiring members has none).
for i = 1, n do
  if changed[i] and timed[i] then follow_ttl(i) end
end
return {1, existed}
