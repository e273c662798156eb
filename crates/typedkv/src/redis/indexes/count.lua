-- Counts the members of an index between two lexicographic bounds whose entity has not
-- expired (typedkv's Store::count_by).
-- KEYS[1] the index's members, KEYS[2] their expiries; ARGV[1], ARGV[2] the bounds.
local live = 0
for _, m in ipairs(redis.call('ZRANGEBYLEX', KEYS[1], ARGV[1], ARGV[2])) do
  local expires = redis.call('ZSCORE', KEYS[2], m)
  if not expires or tonumber(expires) > now() then live = live + 1 end
end
return live
