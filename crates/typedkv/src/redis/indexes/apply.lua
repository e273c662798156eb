-- Applies a batch of indexed writes atomically (typedkv's Backend::apply_indexed).
-- KEYS[2i-1], KEYS[2i]      index i's members and expiries (i = 1..n)
-- KEYS[2n+2o-1], KEYS[2n+2o] op o's entity key and record key
-- ARGV: n, entity prefix, n index names, n kinds ('e' equality, 'u' unique, 'r' range),
--   op count, '1' if the ops are independent or '0' if they are one batch, then per op:
--   guard ('always' 'absent' 'present' 'bytes' 'sha1'), expected, action ('set' 'del'),
--   value, expiry ('px' 'keep' 'none'), ms, the record the write leaves (as `entries_of`
--   reads it, '' when it has no entry), then per index: member count, members.
-- Returns the number of deleted entities that existed when every op applied; {0, op,
-- current bytes or false} when op's guard failed; {2, ...} or {3, ...} when op would take a
-- unique value another op of the batch or another entity's member holds (see
-- taken_claim). In those cases nothing is written.
-- Independent ops are writes of separate callers coalesced into one call (each a `set`
-- without a guard): each applies or not on its own, in order, as if sent alone one after
-- the other, so its unique claims are checked when its turn comes (after the ops before
-- it). One whose claim another entity holds, or whose record cannot be read (a key of
-- another Redis type), is left out before it writes anything; the reply is then
-- {4, op, op, ...}, naming those left out, whose callers send them again alone (and learn
-- why from that call).
--
-- Written to make few tables, closures and strings, because each costs the server more
-- than a command (redis-server under callgrind: 2,500-5,000 instructions per table, with
-- the garbage collection it brings; see BENCHMARKS.md). Ops stay in ARGV and are read by
-- position; steps are written where they run rather than as helpers; tables are made only
-- where the batch needs them (several ops, expiring members, unique indexes); and an
-- entity whose entries do not change costs its record's read and its SET, plus one ZCARD
-- per index.

local n = tonumber(ARGV[1])
local entity_prefix = ARGV[2]
local has_unique = false
for i = 1, n do
  if ARGV[2 + n + i] == 'u' then has_unique = true end
end
local op_count = tonumber(ARGV[3 + 2 * n])
local independent = ARGV[4 + 2 * n] == '1'
-- Where op o's fields start in ARGV (guard, expected, action, value, expiry, ms, record,
-- then per index a member count and the members): `first` for a single op, `at[o]` in a
-- batch.
local first, at = 5 + 2 * n, nil
if op_count > 1 then
  at = {}
  local a = first
  for o = 1, op_count do
    at[o] = a
    a = a + 7
    for _ = 1, n do a = a + 1 + tonumber(ARGV[a]) end
  end
end

-- 1. Guards, before anything is written.
for o = 1, op_count do
  local p = at and at[o] or first
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

-- 2. Up to 256 expired members of each index leave. `timed[i]`: index i has expiring
-- members; `changed[i]`: its members or their expiries change (its own TTL follows, step
-- 5). Both stay nil while no index has expiring members (most stores). `left[entry]`: the
-- record entries whose members left here or in step 3, or are missing (step 3: a unique
-- claim finding the writer's member absent). Redis judges keys by the moment
-- the script started and `now()` is read later, so an entity (and its record) can still
-- be alive for this script when its members have just left: an op below that keeps such
-- an entry must add it again, not count it as kept.
local timed, changed, left = nil, nil, nil
for i = 1, n do
  if redis.call('ZCARD', KEYS[2 * i]) > 0 then
    timed, changed = timed or {}, changed or {}
    timed[i] = true
    local dead = redis.call('ZRANGEBYSCORE', KEYS[2 * i], '-inf', now(), 'LIMIT', 0, 256)
    if #dead > 0 then
      redis.call('ZREM', KEYS[2 * i - 1], unpack(dead))
      redis.call('ZREM', KEYS[2 * i], unpack(dead))
      left = left or {}
      for _, m in ipairs(dead) do left[ARGV[2 + i] .. '\0' .. m] = true end
    end
  end
end

-- 3. Unique claims of a batch (of independent ops: each before its write, step 4): the
-- first that another op of the batch makes for another id, as
-- {2, op, index, value prefix}; or that a member of another live entity holds, which the
-- batch does not rewrite without it, as {3, op, index, value prefix, member, that entity's
-- key, its bytes}: whether its current value still gives the member, only the client can
-- tell (it decodes). Members of entities that expired or are gone are removed on the way
-- (they free the value). Its helpers are made only here; `taken_claim(lo, hi, fresh)`
-- checks ops lo..hi as one batch (`fresh`: their records name other values, see below).
local taken_claim = nil
if has_unique then
  -- Where op o's members of index i are in ARGV: the first one's position, and how many.
  local function members(o, i)
    local p = (at and at[o] or first) + 7
    for _ = 2, i do p = p + 1 + tonumber(ARGV[p]) end
    return p + 1, tonumber(ARGV[p])
  end
  local function id_of(o) return string.sub(KEYS[2 * n + 2 * o - 1], #entity_prefix + 1) end
  taken_claim = function(lo, hi, fresh)
    -- What the ops so far claim, to find two that claim one value: none to find in one op
    -- (its members are one id's), so no table for it (the common case: coalesced ops are
    -- checked one by one).
    local claimed = lo < hi and {} or nil
    for o = lo, hi do
      if ARGV[(at and at[o] or first) + 2] == 'set' then
        local id_len = #KEYS[2 * n + 2 * o - 1] - #entity_prefix
        for i = 1, n do
          if ARGV[2 + n + i] == 'u' then
            if claimed then claimed[i] = claimed[i] or {} end
            local f, count = members(o, i)
            for j = f, f + count - 1 do
              local m = ARGV[j]
              if claimed then
                local id, value = id_of(o), string.sub(m, 1, #m - id_len)
                if claimed[i][value] and claimed[i][value] ~= id then return {2, o, i, value} end
                claimed[i][value] = id
              end
              -- The entity's own member in the index: it holds the value (every claim
              -- removes the other holders' members first), nothing to look up. Without
              -- it, the entry is written in step 4 even if the entity's record names it
              -- (a record of an earlier version, which left the record of a dead holder
              -- whose member it removed). A `fresh` op (its record names another value
              -- or none) rarely has it: the holders' lookup finds it instead.
              local mine = not fresh and redis.call('ZSCORE', KEYS[2 * i - 1], m)
              if not mine then
                local id, value = id_of(o), string.sub(m, 1, #m - id_len)
                local holders = redis.call('ZRANGEBYLEX', KEYS[2 * i - 1], '[' .. value,
                  '(' .. value .. '\255')
                for _, h in ipairs(holders) do
                  local holder = string.sub(h, #value + 1)
                  if holder == id then
                    mine = true
                  else
                    local expires = redis.call('ZSCORE', KEYS[2 * i], h)
                    local key = entity_prefix .. holder
                    local cur = (not expires or tonumber(expires) > now())
                      and redis.call('GET', key)
                    if cur then
                      -- Rewritten by the batch without member h: then it frees the value.
                      local rewritten = false
                      for other = lo, hi do
                        if id_of(other) == holder then
                          rewritten = true
                          if ARGV[(at and at[other] or first) + 2] == 'set' then
                            local g, c = members(other, i)
                            for k = g, g + c - 1 do
                              if ARGV[k] == h then rewritten = false end
                            end
                          end
                        end
                      end
                      if not rewritten then return {3, o, i, value, h, key, cur} end
                    else
                      -- Its record goes too (the holder is gone: nothing else to keep), so
                      -- that every record names only entries in the indexes (see 4a).
                      local record = KEYS[2 * n + 2 * o]
                      redis.call('DEL', string.sub(record, 1, #record - id_len) .. holder)
                      redis.call('ZREM', KEYS[2 * i - 1], h)
                      redis.call('ZREM', KEYS[2 * i], h)
                      left = left or {}
                      left[ARGV[2 + i] .. '\0' .. h] = true
                    end
                  end
                end
                if not mine then
                  left = left or {}
                  left[ARGV[2 + i] .. '\0' .. m] = true
                end
              end
            end
          end
        end
      end
    end
    return nil
  end
  if not independent then
    local taken = taken_claim(1, op_count)
    if taken then return taken end
  end
end

-- 4a. The commonest shape, written without the general steps' tables and checks: sets on a
-- store of one index without expiring members, each with one member and no expiry, applied
-- each on its own (independent ops, or a single op). Each op whose record is absent, already
-- the one it leaves, or the one entry of this index (`name \0 member`: a name has no zero
-- byte, so a record starting with the name and one is exactly that) costs its commands and
-- no more: a term move is a ZADD, a ZREM, and the record and the value written. A record
-- that is already the one the op leaves needs no claim check: it names only members in the
-- index (every script removing a member takes it out of its record or deletes the record),
-- so the entity holds its unique value already. The first op that is not such (a record of
-- several entries, of an older format or of another Redis type; a unique value another
-- entity holds) and every op after it take the general steps (4b), which check it again.
-- Every check comes before the op's first write, so an op either is written here whole or
-- left to 4b untouched.
local from = 1
if (independent or op_count == 1) and n == 1 and not timed then
  local ours = ARGV[3] .. '\0'
  while from <= op_count do
    local p = at and at[from] or first
    if ARGV[p + 2] ~= 'set' or ARGV[p + 4] ~= 'none' or ARGV[p + 7] ~= '1' then break end
    local record, rec, m = KEYS[2 + 2 * from], ARGV[p + 6], ARGV[p + 8]
    local raw = redis.pcall('GET', record)
    if raw ~= rec then
      if raw and (type(raw) ~= 'string' or string.find(raw, ours, 1, true) ~= 1) then break end
      -- Its member is added, found missing by the claim check (`left`) or not.
      if independent and taken_claim and taken_claim(from, from, true) then break end
      redis.call('ZADD', KEYS[1], 0, m)
      if raw then redis.call('ZREM', KEYS[1], string.sub(raw, #ours + 1)) end
      redis.call('SET', record, rec)
    elseif left and left[ours .. m] then
      -- Its member left in this call (a claim check found it missing): added again.
      redis.call('ZADD', KEYS[1], 0, m)
    end
    redis.call('SET', KEYS[1 + 2 * from], ARGV[p + 3])
    from = from + 1
  end
end

-- 4b. The writes. Only what changes is touched: entries the entity keeps stay, and its
-- record is rewritten only when its entries change. A record entry is `name \0 member`;
-- the record is a string of them (see `entries_of`), or, written by an earlier version, a
-- Redis set of them, which any write of the entity turns into a string.
local existed, skipped = 0, nil
for o = from, op_count do
  local p = at and at[o] or first
  local key, record = KEYS[2 * n + 2 * o - 1], KEYS[2 * n + 2 * o]
  local set = ARGV[p + 2] == 'set'
  -- `rec`: the record the write leaves. `plain`: no expiry anywhere, so an op whose record
  -- is already `rec` writes its value alone.
  local rec = ARGV[p + 6]
  local plain = set and not timed and ARGV[p + 4] == 'none'
  -- `raw`: the record as stored (false when absent or a set); `old`: its entries, left nil
  -- when the record is already `rec`; `broken`: why the op cannot be written (another
  -- program's key in the record's place).
  local raw, old, broken = redis.pcall('GET', record), nil, nil
  -- A record already `rec` holds its claims (see 4a), unless some of its entries just left.
  if independent and taken_claim and (raw ~= rec or left) and taken_claim(o, o) then
    broken = 'a unique value it claims is held'
  else
    if type(raw) == 'table' then
      old, raw = redis.pcall('SMEMBERS', record), false
      if old.err then broken = old.err end
    elseif not raw then
      old = {}
    elseif not plain or raw ~= rec or left then
      old = entries_of(raw)
      if not old then broken = 'WRONGTYPE ' .. record .. ' is not an index record' end
    end
  end
  if broken then
    if not independent then return redis.error_reply(broken) end
    skipped = skipped or {4}
    skipped[#skipped + 1] = o
  elseif plain and not old then
    redis.call('SET', key, ARGV[p + 3])
  else
    -- wanted[entry]: 1 for an entry the entity gains, 2 for one it keeps; count: how many.
    local wanted, count, kept = {}, 0, 0
    if set then
      local q = p + 7
      for i = 1, n do
        for j = q + 1, q + tonumber(ARGV[q]) do
          local entry = ARGV[2 + i] .. '\0' .. ARGV[j]
          if not wanted[entry] then wanted[entry], count = 1, count + 1 end
        end
        q = q + 1 + tonumber(ARGV[q])
      end
    end
    for _, entry in ipairs(old) do
      if wanted[entry] then
        -- One that left in step 2 or 3 stays 1: it is added again.
        if not (left and left[entry]) then wanted[entry], kept = 2, kept + 1 end
      else
        -- Its index, by the name before the \0 (a name no longer declared: nothing to remove).
        local z = string.find(entry, '\0', 1, true)
        if z then
          local name, m = string.sub(entry, 1, z - 1), string.sub(entry, z + 1)
          for i = 1, n do
            if ARGV[2 + i] == name then
              redis.call('ZREM', KEYS[2 * i - 1], m)
              if timed and timed[i] then redis.call('ZREM', KEYS[2 * i], m) end
              break
            end
          end
        end
      end
    end
    if not set then
      if raw or #old > 0 then redis.call('DEL', record) end
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
      if expires_at then timed, changed = timed or {}, changed or {} end
      local had_expiry = false
      -- Each entry again, unless none is new and no expiry is involved (the common rewrite).
      if kept < count or timed then
        local q = p + 7
        for i = 1, n do
          for j = q + 1, q + tonumber(ARGV[q]) do
            local m = ARGV[j]
            local entry = ARGV[2 + i] .. '\0' .. m
            local state = wanted[entry]
            if state == 1 then
              redis.call('ZADD', KEYS[2 * i - 1], 0, m)
              wanted[entry] = 3
              if changed then changed[i] = true end
            end
            if expires_at then
              redis.call('ZADD', KEYS[2 * i], expires_at, m)
              timed[i], changed[i] = true, true
            elseif timed and timed[i] and state == 2
              and redis.call('ZREM', KEYS[2 * i], m) == 1 then
              had_expiry, changed[i] = true, true
            end
          end
          q = q + 1 + tonumber(ARGV[q])
        end
      end
      if kept ~= #old or count ~= #old or not raw then
        -- Entries changed (or the record is a set): the record anew.
        if count > 0 then
          redis.call('SET', record, rec)
        elseif raw or #old > 0 then
          redis.call('DEL', record)
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
end

-- 5. Index TTLs follow their members: an index lives as long as its last member when every
-- member expires, for ever otherwise, so indexes of TTL'd entities never outlive them, even
-- when nothing touches them again.
if timed then
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
end
if skipped then return skipped end
return existed
