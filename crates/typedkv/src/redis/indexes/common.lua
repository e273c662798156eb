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
-- string: a single entry as it is (the common case, read and compared without parsing),
-- several as a zero byte followed by each entry's length in decimal, ':', and the entry (a
-- name is never empty and has no zero byte, so the first byte tells the two apart).
-- Earlier versions kept a Redis set of the entries: the scripts read those too, and a
-- write turns them into the string. `entries_of` parses a record: its entries, or nil when
-- `raw` is not a record.
local function entries_of(raw)
  if string.byte(raw) ~= 0 then
    if string.find(raw, '\0', 2, true) then return {raw} end
    return nil
  end
  local entries, at = {}, 2
  while at <= #raw do
    local colon = string.find(raw, ':', at, true)
    local len = colon and tonumber(string.sub(raw, at, colon - 1))
    if not len or len < 1 or len % 1 ~= 0 or colon + len > #raw then return nil end
    entries[#entries + 1] = string.sub(raw, colon + 1, colon + len)
    at = colon + len + 1
  end
  return entries
end

-- The record of `entries` (a list of two or more), as `entries_of` reads it.
local function record_of(entries)
  local parts = {'\0'}
  for _, e in ipairs(entries) do parts[#parts + 1] = #e .. ':' .. e end
  return table.concat(parts)
end
