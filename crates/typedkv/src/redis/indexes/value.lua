-- The value step of an indexed write on a cluster store without hash tag: one entity's
-- guard and write, on its own slot.
-- KEYS[1]  the entity's key
-- ARGV[1]  guard: 'always' 'absent' 'present' 'bytes' (equal to ARGV[2]) 'sha1' (digest
--          equal to ARGV[2])
-- ARGV[3]  'set' (ARGV[4] the bytes) or 'del'
-- ARGV[5]  'px' (expire after ARGV[6] ms), 'keep' (keep the TTL) or 'none'
-- Returns {1, whether the key existed, its PTTL after the write} or {0, current bytes or
-- false} when the guard failed.
local cur = redis.call('GET', KEYS[1])
local ok
if ARGV[1] == 'always' then ok = true
elseif ARGV[1] == 'absent' then ok = not cur
elseif ARGV[1] == 'present' then ok = cur ~= false
elseif ARGV[1] == 'bytes' then ok = cur == ARGV[2]
else ok = cur ~= false and redis.sha1hex(cur) == ARGV[2] end
if not ok then return {0, cur} end
local existed = 0
if cur then existed = 1 end
if ARGV[3] == 'del' then
  redis.call('DEL', KEYS[1])
  return {1, existed, -2}
elseif ARGV[5] == 'px' then
  redis.call('SET', KEYS[1], ARGV[4], 'PX', ARGV[6])
elseif ARGV[5] == 'keep' then
  redis.call('SET', KEYS[1], ARGV[4], 'KEEPTTL')
else
  redis.call('SET', KEYS[1], ARGV[4])
end
return {1, existed, redis.call('PTTL', KEYS[1])}
