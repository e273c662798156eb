-- First step of an indexed write on a cluster store without hash tag (see DESIGN.md,
-- "Indexes"): everything but the values lives in this one slot. Takes a lease on each
-- entity, checks unique claims and adds the new members; `commit.lua` later reads the
-- records, which nobody else changes while the leases are held.
-- KEYS[2i-1], KEYS[2i]      index i's members and expiries (i = 1..n)
-- KEYS[2n+2o-1], KEYS[2n+2o] op o's record and lease keys
-- ARGV: n, n index names, n kinds ('e' 'u' 'r'), record prefix, lease prefix, token,
--   lease ms, op count, then per op: id, action ('set' 'del'), then per index: member
--   count, members.
-- Returns {1}, {3, op} when another writer holds op's
-- lease, or {2, op, index, value prefix} when op would take a unique value another entity
-- holds; in those two cases nothing is written.
local a = 0
local function arg() a = a + 1; return ARGV[a] end
local n = tonumber(arg())
local names, kinds = {}, {}
for i = 1, n do names[i] = arg() end
for i = 1, n do kinds[i] = arg() end
local record_prefix, lease_prefix, token, lease_ms = arg(), arg(), arg(), arg()
local ops = {}
for o = 1, tonumber(arg()) do
  local op = {record = KEYS[2 * n + 2 * o - 1], lease = KEYS[2 * n + 2 * o], id = arg(),
    action = arg(), members = {}}
  for i = 1, n do
    local m = {}
    for j = 1, tonumber(arg()) do m[j] = arg() end
    op.members[i] = m
  end
  ops[o] = op
end
local now_ms = false
local function now()
  if not now_ms then
    local t = redis.call('TIME')
    now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return now_ms
end

-- 1. Leases: one writer per entity at a time.
for o, op in ipairs(ops) do
  local holder = redis.call('GET', op.lease)
  if holder and holder ~= token then return {3, o} end
end

-- 2. Expired members leave, a bounded number per index and call.
for i = 1, n do
  if redis.call('ZCARD', KEYS[2 * i]) > 0 then
    local dead = redis.call('ZRANGEBYSCORE', KEYS[2 * i], '-inf', now(), 'LIMIT', 0, 256)
    if #dead > 0 then
      redis.call('ZREM', KEYS[2 * i - 1], unpack(dead))
      redis.call('ZREM', KEYS[2 * i], unpack(dead))
    end
  end
end

-- 3. Unique claims. A holder holds its value while its member has not expired and its
-- record names it, or while its own write is in flight (its lease is held).
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
            local alive = (not expires or tonumber(expires) > now()) and (
              redis.call('SISMEMBER', record_prefix .. holder, names[i] .. '\0' .. h) == 1
              or redis.call('EXISTS', lease_prefix .. holder) == 1)
            if alive then
              local rewritten = false
              for _, other in ipairs(ops) do
                if other.id == holder then
                  rewritten = true
                  for _, om in ipairs(other.members[i]) do
                    if om == h and other.action == 'set' then rewritten = false end
                  end
                end
              end
              if not rewritten then return {2, o, i, prefix} end
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

-- 4. Leases taken, new members added (before the values are written: a query never misses
-- an entity whose value is written).
for _, op in ipairs(ops) do
  redis.call('SET', op.lease, token, 'PX', lease_ms)
  for i = 1, n do
    for _, m in ipairs(op.members[i]) do redis.call('ZADD', KEYS[2 * i - 1], 0, m) end
  end
end
return {1}
