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
