-- Commits a transaction (typedkv's Backend::commit): every check, then every write, as one
-- atomic step (after `commit_steps.lua`). Each key is declared once, with what it must hold
-- and what it becomes:
-- KEYS[i]          the keys: those the transaction read (in the order of its checks), then
--                  those it only writes
-- ARGV[4i-3]       what KEYS[i] must hold: '' (nothing: a key only written), or as `holds`
--                  takes it, with ARGV[4i-2] the bytes or digest expected
-- ARGV[4i-1]       what it becomes, as `write` takes it, with ARGV[4i] the value
-- Returns {1} when applied, {0, i} when KEYS[i] did not hold what it must (nothing is
-- written). Written for few Lua operations per key: each argument is a string Redis makes
-- for the script, so the layout keeps them to four per key.
local n = #KEYS
for i = 1, n do
  local want = ARGV[4 * i - 3]
  if want ~= '' and not holds(KEYS[i], want, ARGV[4 * i - 2]) then return {0, i} end
end
for i = 1, n do
  write(KEYS[i], ARGV[4 * i - 1], ARGV[4 * i])
end
return {1}
