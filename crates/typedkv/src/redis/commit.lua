-- Commits a transaction (typedkv's Backend::commit): every check, then every write, as one
-- atomic step.
-- KEYS[1..c]        the keys the transaction read (c = ARGV[1])
-- KEYS[c+1..]       the keys it writes, in order
-- ARGV[1]           c
-- ARGV[2..2c+1]     per check, what the key must hold and its argument, as in
--                   compare_and_swap.lua: 'always', 'absent', 'present', 'bytes' (equal to
--                   the argument) or 'sha1' (its SHA-1 hex digest equal to the argument)
-- then per write:   'set' and the bytes, or 'del' and ''; 'keep' (keep the key's TTL), 'px'
--                   (expire after the next argument's ms) or 'none', and the ms
-- Returns {1} when applied, {0, c} when check c did not hold (nothing is written).
local c = tonumber(ARGV[1])
for i = 1, c do
  local current = redis.call('GET', KEYS[i])
  local want, expected = ARGV[2 * i], ARGV[2 * i + 1]
  local holds
  if want == 'bytes' then
    holds = current == expected
  elseif want == 'absent' then
    holds = not current
  elseif want == 'always' then
    holds = true
  elseif want == 'present' then
    holds = current ~= false
  else
    holds = current ~= false and redis.sha1hex(current) == expected
  end
  if not holds then return {0, i} end
end
local a = 2 * c + 2
for k = c + 1, #KEYS do
  if ARGV[a] == 'del' then
    redis.call('DEL', KEYS[k])
  elseif ARGV[a + 2] == 'keep' then
    redis.call('SET', KEYS[k], ARGV[a + 1], 'KEEPTTL')
  elseif ARGV[a + 2] == 'px' then
    redis.call('SET', KEYS[k], ARGV[a + 1], 'PX', ARGV[a + 3])
  else
    redis.call('SET', KEYS[k], ARGV[a + 1])
  end
  a = a + 4
end
return {1}
