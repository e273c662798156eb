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

-- 1. Leases: one writer per entity at a time.
for o, op in ipairs(ops) do
  local holder = redis.call('GET', op.lease)
  if holder and holder ~= token then return {3, o} end
end

-- 2. Expired members leave.
for i = 1, n do purge_expired(i) end

-- 3. Unique claims. A holder holds its value while its record names it, or while its own
-- write is in flight (its lease is held).
local taken = taken_claim(ops, n, kinds, function(i, holder, h)
  return redis.call('SISMEMBER', record_prefix .. holder, names[i] .. '\0' .. h) == 1
    or redis.call('EXISTS', lease_prefix .. holder) == 1
end)
if taken then return taken end

-- 4. Leases taken, new members added (before the values are written: a query never misses
-- an entity whose value is written).
for _, op in ipairs(ops) do
  redis.call('SET', op.lease, token, 'PX', lease_ms)
  for i = 1, n do
    for _, m in ipairs(op.members[i]) do redis.call('ZADD', KEYS[2 * i - 1], 0, m) end
  end
end
return {1}
