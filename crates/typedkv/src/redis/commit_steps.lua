-- The steps of a transaction's commit on each key, prepended at compile time to the
-- scripts that commit (`commit.lua`, and `indexes/commit_beside.lua` with a store's indexed
-- writes): what a key must hold, and what it becomes.

-- Whether `key` holds what `want` says: 'a' absent, 'b' the bytes `expected`, 's' bytes
-- whose SHA-1 hex digest is `expected`, 'p' present ('' is never asked).
local function holds(key, want, expected)
  local current = redis.call('GET', key)
  if want == 'b' then
    return current == expected
  elseif want == 'a' then
    return not current
  elseif want == 'p' then
    return current ~= false
  end
  return current ~= false and redis.sha1hex(current) == expected
end

-- Writes `key` as `becomes` says: '' nothing (a key only read), 'd' deleted, 'n' `value`
-- without expiry, 'k' `value` keeping its TTL, 'x<ms>' `value` expiring after <ms> ms.
local function write(key, becomes, value)
  if becomes == 'n' then
    redis.call('SET', key, value)
  elseif becomes == 'd' then
    redis.call('DEL', key)
  elseif becomes == 'k' then
    redis.call('SET', key, value, 'KEEPTTL')
  elseif becomes ~= '' then
    redis.call('SET', key, value, 'PX', string.sub(becomes, 2))
  end
end
