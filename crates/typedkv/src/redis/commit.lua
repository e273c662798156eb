-- Commits a transaction (typedkv's Backend::commit): every check, then every write, as one
-- atomic step. Each key is declared once, with what it must hold and what it becomes:
-- KEYS[i]          the keys: those the transaction read (in the order of its checks), then
--                  those it only writes
-- ARGV[4i-3]       what KEYS[i] must hold: '' (nothing: a key only written), 'a' absent,
--                  'b' the bytes ARGV[4i-2], 's' bytes whose SHA-1 hex digest is ARGV[4i-2],
--                  'p' present
-- ARGV[4i-1]       what it becomes: '' (nothing: a key only read), 'd' deleted, 'n' ARGV[4i]
--                  without expiry, 'k' ARGV[4i] keeping its TTL, 'x<ms>' ARGV[4i] expiring
--                  after <ms> milliseconds
-- Returns {1} when applied, {0, i} when KEYS[i] did not hold what it must (nothing is
-- written). Written for few Lua operations per key: each argument is a string Redis makes
-- for the script, so the layout keeps them to four per key.
local n = #KEYS
for i = 1, n do
  local want = ARGV[4 * i - 3]
  if want ~= '' then
    local current = redis.call('GET', KEYS[i])
    local holds
    if want == 'b' then
      holds = current == ARGV[4 * i - 2]
    elseif want == 'a' then
      holds = not current
    elseif want == 'p' then
      holds = current ~= false
    else
      holds = current ~= false and redis.sha1hex(current) == ARGV[4 * i - 2]
    end
    if not holds then return {0, i} end
  end
end
for i = 1, n do
  local becomes = ARGV[4 * i - 1]
  if becomes == 'n' then
    redis.call('SET', KEYS[i], ARGV[4 * i])
  elseif becomes == 'd' then
    redis.call('DEL', KEYS[i])
  elseif becomes == 'k' then
    redis.call('SET', KEYS[i], ARGV[4 * i], 'KEEPTTL')
  elseif becomes ~= '' then
    redis.call('SET', KEYS[i], ARGV[4 * i], 'PX', string.sub(becomes, 2))
  end
end
return {1}
