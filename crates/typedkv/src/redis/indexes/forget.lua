-- Removes index members the client found stale (typedkv's Backend::index_forget): each
-- leaves the index, its expiry set and its entity's record, if the entity still holds what
-- the client saw (no write since gave the entity the member again). An entity that was
-- absent and still is loses its whole record.
-- KEYS[1] the index's members, KEYS[2] their expiries
-- ARGV[1] the index's name, ARGV[2] the entity key prefix, ARGV[3] the record key prefix,
--   then per member: the member, its entity's id, the SHA-1 of the bytes seen ('' absent).
-- Returns how many it removed.
-- The record of `entries` (a list of two or more), as `entries_of` reads it.
local function record_of(entries)
  local parts = {'\0'}
  for _, e in ipairs(entries) do
    local len = #e
    parts[#parts + 1] = string.char(math.floor(len / 16777216) % 256,
      math.floor(len / 65536) % 256, math.floor(len / 256) % 256, len % 256) .. e
  end
  return table.concat(parts)
end

local removed = 0
for k = 4, #ARGV, 3 do
  local member, id, seen = ARGV[k], ARGV[k + 1], ARGV[k + 2]
  local cur = redis.call('GET', ARGV[2] .. id)
  local unchanged
  if seen == '' then unchanged = not cur else unchanged = cur and redis.sha1hex(cur) == seen end
  if unchanged then
    local record = ARGV[3] .. id
    if cur then
      -- The entry leaves the record (a record that does not parse stays: the entity's next
      -- write reports it).
      local entry = ARGV[1] .. '\0' .. member
      local raw = redis.pcall('GET', record)
      if type(raw) == 'string' then
        local entries = entries_of(raw)
        if entries then
          local rest = {}
          for _, e in ipairs(entries) do
            if e ~= entry then rest[#rest + 1] = e end
          end
          if #rest == 0 then
            redis.call('DEL', record)
          elseif #rest < #entries then
            redis.call('SET', record, #rest == 1 and rest[1] or record_of(rest), 'KEEPTTL')
          end
        end
      elseif raw then
        redis.pcall('SREM', record, entry) -- a record of an earlier version: a set
      end
    else
      redis.call('DEL', record)
    end
    redis.call('ZREM', KEYS[1], member)
    redis.call('ZREM', KEYS[2], member)
    removed = removed + 1
  end
end
return removed
