-- GCRA check, atomic in Redis. Mirrors src/gcra.rs step by step; both back
-- ends must return identical decisions (tests/limiter compares them).
--
-- KEYS[1]  bucket key; its value is the TAT in integer microseconds
-- ARGV[1]  emission interval T in microseconds (>= 1)
-- ARGV[2]  burst (>= 1)
-- ARGV[3]  cost (clamped by the caller to burst + 1)
-- ARGV[4]  optional "now" in microseconds (tests only); default: the Redis
--          server's clock, so all replicas share one time source
--
-- Returns {allowed (0|1), remaining, retry_after_us, reset_after_us}.
-- Every number stays below 2^53, so Lua's doubles are exact.
-- Redis >= 5 replicates script effects, which is what allows TIME here.

local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local now
if ARGV[4] then
  now = tonumber(ARGV[4])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end

local capacity = burst * interval
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then
  tat = now
end
local used = math.min(tat - now, capacity)
local remaining_before = math.floor((capacity - used) / interval)

if cost > burst then
  return {0, remaining_before, math.max(used, interval), used}
end

local new_tat = tat + cost * interval
local needed = new_tat - now
if needed > capacity then
  return {0, remaining_before, needed - capacity, used}
end

if new_tat > now then
  -- The key lives exactly until its bucket is full again.
  redis.call('SET', KEYS[1], string.format('%.0f', new_tat),
    'PX', math.ceil(needed / 1000))
end
return {1, math.floor((capacity - needed) / interval), 0, needed}
