-- Helpers of the index scripts, prepended to each of them at compile time (a Redis script
-- cannot import another). Index i's keys are KEYS[2i-1] (members) and KEYS[2i] (expiries).
-- Every redis.call costs microseconds: the helpers make none they can avoid.

-- The server's clock in milliseconds, read once and only when an expiry is involved.
local now_ms = false
local function now()
  if not now_ms then
    local t = redis.call('TIME')
    now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return now_ms
end

-- Removes up to 256 expired members of index i; whether it has expiring members at all.
local function purge_expired(i)
  if redis.call('ZCARD', KEYS[2 * i]) == 0 then return false end
  local dead = redis.call('ZRANGEBYSCORE', KEYS[2 * i], '-inf', now(), 'LIMIT', 0, 256)
  if #dead > 0 then
    redis.call('ZREM', KEYS[2 * i - 1], unpack(dead))
    redis.call('ZREM', KEYS[2 * i], unpack(dead))
  end
  return true
end

-- Index i lives as long as its last member when every member expires, for ever otherwise:
-- indexes of TTL'd entities never outlive them, even when nothing touches them again.
local function follow_ttl(i)
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

-- The index position and member of a record entry `name \0 member`, by index name.
local function entry_index(entry, by_name)
  local z = string.find(entry, '\0', 1, true)
  local i = z and by_name[string.sub(entry, 1, z - 1)]
  if i then return i, string.sub(entry, z + 1) end
end

-- ZREM / SADD of many members, in chunks (Lua's unpack has a limit).
local function each_chunk(list, f)
  for s = 1, #list, 1000 do f(unpack(list, s, math.min(s + 999, #list))) end
end

