-- Atomic compare-and-swap of one key's bytes (typedkv's Store::update and set_if_version).
-- KEYS[1]  the key
-- ARGV[1]  what the current value must be: 'always' (anything), 'absent', 'present',
--          'bytes' (equal to ARGV[2]) or 'sha1' (its SHA-1 hex digest equal to ARGV[2])
-- ARGV[2]  the expected bytes or digest
-- ARGV[3]  'set' or 'del'
-- ARGV[4]  the new bytes (for 'set')
-- ARGV[5]  'keep' (keep the key's TTL), 'px' (expire after ARGV[6] ms) or 'none' (no expiry)
-- Returns {1} when swapped, {0, current bytes or false} when the value was not as expected.
local current = redis.call('GET', KEYS[1])
local matches
if ARGV[1] == 'always' then
  matches = true
elseif ARGV[1] == 'absent' then
  matches = not current
elseif ARGV[1] == 'present' then
  matches = current and true
elseif ARGV[1] == 'bytes' then
  matches = current == ARGV[2]
else
  matches = current and redis.sha1hex(current) == ARGV[2]
end
if not matches then return {0, current} end
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
