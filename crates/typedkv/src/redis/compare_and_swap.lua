-- Atomic compare-and-swap of one key's bytes (typedkv's Store::update).
-- KEYS[1]  the key
-- ARGV[1]  '1' if a value is expected at the key, '0' if the key must be absent
-- ARGV[2]  the expected bytes (ignored when ARGV[1] is '0')
-- ARGV[3]  'set' or 'del'
-- ARGV[4]  the new bytes (for 'set')
-- ARGV[5]  'keep' (keep the key's TTL), 'px' (expire after ARGV[6] ms) or 'none' (no expiry)
-- Returns {1} when swapped, {0, current bytes or nil} when the value was not as expected.
local current = redis.call('GET', KEYS[1])
if ARGV[1] == '1' then
  if current ~= ARGV[2] then return {0, current} end
elseif current then
  return {0, current}
end
if ARGV[3] == 'del' then
  redis.call('DEL', KEYS[1])
elseif ARGV[5] == 'keep' then
  redis.call('SET', KEYS[1], ARGV[4], 'KEEPTTL')
elseif ARGV[5] == 'px' then
  redis.call('SET', KEYS[1], ARGV[4], 'PX', ARGV[6])
else
  redis.call('SET', KEYS[1], ARGV[4])
end
return {1}
