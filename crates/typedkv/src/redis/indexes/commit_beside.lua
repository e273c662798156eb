-- Commits a transaction that wrote a store with indexes beside other stores (typedkv's
-- Backend::apply_indexed_with), as one atomic step: the other stores' checks, then the
-- indexed writes (`apply.lua`, as the function `apply` here, which refuses before it writes
-- anything), then the other stores' writes. After `common.lua`, `commit_steps.lua` and
-- `apply` wrapping `apply.lua`.
-- KEYS             the indexed writes' keys (ARGV[1] of them, as `apply.lua` takes them),
--                  then the other stores' keys
-- ARGV[1], ARGV[2] how many keys and arguments are the indexed writes'
-- ARGV[3..]        the indexed writes' arguments, then four per other key, as `commit.lua`
--                  takes them
-- Returns what `apply.lua` returns, or {5, i} when the i-th other key did not hold what it
-- must. Nothing is written unless every check holds and `apply` applies.
local key_count, arg_count = tonumber(ARGV[1]), tonumber(ARGV[2])
local base, others = 2 + arg_count, #KEYS - key_count
for i = 1, others do
  local want = ARGV[base + 4 * i - 3]
  if want ~= '' and not holds(KEYS[key_count + i], want, ARGV[base + 4 * i - 2]) then
    return {5, i}
  end
end
local keys, args = {}, {}
for i = 1, key_count do keys[i] = KEYS[i] end
for i = 1, arg_count do args[i] = ARGV[2 + i] end
local applied = apply(keys, args)
if type(applied) == 'table' then return applied end
for i = 1, others do
  write(KEYS[key_count + i], ARGV[base + 4 * i - 1], ARGV[base + 4 * i])
end
return applied
