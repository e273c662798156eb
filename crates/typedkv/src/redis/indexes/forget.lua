-- Removes index members the client found stale (typedkv's Backend::index_forget): each
-- leaves the index, its expiry set and its entity's record, if the entity still holds what
-- the client saw (no write since gave the entity the member again). An entity that was
-- absent and still is loses its whole record.
-- KEYS[1] the index's members, KEYS[2] their expiries
-- ARGV[1] the index's name, ARGV[2] the entity key prefix, ARGV[3] the record key prefix,
--   then per member: the member, its entity's id, the SHA-1 of the bytes seen ('' absent).
-- Returns how many it removed.
local removed = 0
for k = 4, #ARGV, 3 do
  local member, id, seen = ARGV[k], ARGV[k + 1], ARGV[k + 2]
  local cur = redis.call('GET', ARGV[2] .. id)
  local unchanged
  if seen == '' then unchanged = not cur else unchanged = cur and redis.sha1hex(cur) == seen end
  if unchanged then
    if cur then
      redis.call('SREM', ARGV[3] .. id, ARGV[1] .. '\0' .. member)
    else
      redis.call('DEL', ARGV[3] .. id)
    end
    redis.call('ZREM', KEYS[1], member)
    redis.call('ZREM', KEYS[2], member)
    removed = removed + 1
  end
end
return removed
