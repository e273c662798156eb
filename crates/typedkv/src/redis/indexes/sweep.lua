-- One step of an index sweep (typedkv's repair_indexes): looks at up to ARGV[5] members
-- after ARGV[4] ('' from the start), or at the members ARGV[7..] when given (the stale
-- members a query met), and removes those whose entity expired or is gone, or whose
-- entity's record does not name them (left by writes around the indexes: another program,
-- a store without them). The record of an entity that is gone goes too.
-- KEYS[1] the index's members, KEYS[2] their expiries
-- ARGV[1] the index's name, ARGV[2] its kind ('r' range: 8 value bytes; otherwise a 4-byte
--   big-endian value length and the value), ARGV[3] the record key prefix, ARGV[6] the
--   entity key prefix
-- Returns {last member looked at or '' when done, looked at, removed}.
local from = '-'
if ARGV[4] ~= '' then from = '(' .. ARGV[4] end
local page = {}
if #ARGV > 6 then
  for k = 7, #ARGV do page[#page + 1] = ARGV[k] end
else
  page = redis.call('ZRANGEBYLEX', KEYS[1], from, '+', 'LIMIT', 0, tonumber(ARGV[5]))
end
local removed = 0
for _, m in ipairs(page) do
  local value_len = 8
  if ARGV[2] ~= 'r' then
    local b1, b2, b3, b4 = string.byte(m, 1, 4)
    value_len = 4 + (((b1 or 0) * 256 + (b2 or 0)) * 256 + (b3 or 0)) * 256 + (b4 or 0)
  end
  local id = string.sub(m, value_len + 1)
  local expires = redis.call('ZSCORE', KEYS[2], m)
  local expired = expires and tonumber(expires) <= now()
  local gone = id == '' or redis.call('EXISTS', ARGV[6] .. id) == 0
  if gone and id ~= '' then redis.call('DEL', ARGV[3] .. id) end
  if expired or gone or redis.call('SISMEMBER', ARGV[3] .. id, ARGV[1] .. '\0' .. m) == 0 then
    redis.call('ZREM', KEYS[1], m)
    redis.call('ZREM', KEYS[2], m)
    removed = removed + 1
  end
end
local last = ''
if #ARGV <= 6 and #page == tonumber(ARGV[5]) then last = page[#page] end
return {last, #page, removed}
