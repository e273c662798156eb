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

-- The first unique claim of `ops` (each {id, action, members[i]}) that another entity
-- holds, as {2, op, index, value prefix}, or nil. A holder holds its member while it has
-- not expired and `holds(i, holder id, member)` says so, unless the batch rewrites that
-- holder without it; a member no longer held is removed on the way (it frees the value).
local function taken_claim(ops, n, kinds, holds)
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
              if (not expires or tonumber(expires) > now()) and holds(i, holder, h) then
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
  return nil
end

-- ZREM / SADD of many members, in chunks (Lua's unpack has a limit).
local function each_chunk(list, f)
  for s = 1, #list, 1000 do f(unpack(list, s, math.min(s + 999, #list))) end
end

