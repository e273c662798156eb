-- What the index scripts share, prepended to each of them at compile time (a Redis script
-- cannot import another). Every helper is a closure each call of a script makes, used or
-- not: only what several scripts need is here.

-- The server's clock in milliseconds, read once and only when an expiry is involved.
local now_ms = false
local function now()
  if not now_ms then
    local t = redis.call('TIME')
    now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return now_ms
end

-- An entity's record (`ns#rec:id`) lists its index entries (`name \0 member`) as one
-- string: a single entry as it is (the common case, compared without parsing), several as a
-- zero byte followed by each entry's length (4 bytes, big-endian) and the entry. A name is
-- never empty and has no zero byte, so the first byte tells the two apart; no number is
-- formatted or parsed as text, which costs Lua more than the commands around it. Earlier
-- builds kept a Redis set of the entries: the scripts read those too, and a write turns
-- them into the string. `entries_of` parses a record: its entries, or nil when `raw` is not
-- a record.
local function entries_of(raw)
  if string.byte(raw) ~= 0 then
    return string.find(raw, '\0', 2, true) and {raw} or nil
  end
  local entries, at = {}, 2
  while at <= #raw do
    local b1, b2, b3, b4 = string.byte(raw, at, at + 3)
    if not b4 then return nil end
    local len = ((b1 * 256 + b2) * 256 + b3) * 256 + b4
    if len < 1 or at + 3 + len > #raw then return nil end
    entries[#entries + 1] = string.sub(raw, at + 4, at + 3 + len)
    at = at + 4 + len
  end
  return entries
end
