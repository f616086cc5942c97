-- GCRA checks of one key, atomic in Redis. Mirrors src/gcra.rs step by step;
-- both back ends must return identical decisions (tests/limiter compares
-- them).
--
-- One call carries one check or a batch of checks of the same key (the
-- checks that arrived while the previous call for the key was in flight,
-- see src/redis.rs): they are decided one after the other, in order, at the
-- same "now", exactly as that many calls of one check would be.
--
-- KEYS[1]   bucket key; its value is the TAT in integer microseconds
-- ARGV[1]   emission interval T in microseconds (>= 1)
-- ARGV[2]   burst (>= 1)
-- ARGV[3]   "now" in microseconds (tests only), or "" for the Redis server's
--           clock, so all replicas share one time source
-- ARGV[4..] the costs, one per check (clamped by the caller to burst + 1)
--
-- Returns {allowed (0|1), remaining, retry_after_us, reset_after_us} for
-- each check, flattened in order.
-- Every number stays below 2^53, so Lua's doubles are exact.
-- Redis >= 5 replicates script effects, which is what allows TIME here.

local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local now
if ARGV[3] ~= '' then
  now = tonumber(ARGV[3])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end

local capacity = burst * interval
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then
  tat = now
end

local out = {}
local spent = false
for i = 4, #ARGV do
  local cost = tonumber(ARGV[i])
  local used = math.min(tat - now, capacity)
  local remaining_before = math.floor((capacity - used) / interval)
  local new_tat = tat + cost * interval
  local needed = new_tat - now
  local n = #out
  if cost > burst then
    out[n + 1], out[n + 2], out[n + 3], out[n + 4] =
      0, remaining_before, math.max(used, interval), used
  elseif needed > capacity then
    out[n + 1], out[n + 2], out[n + 3], out[n + 4] =
      0, remaining_before, needed - capacity, used
  else
    if new_tat > now then
      tat = new_tat
      spent = true
    end
    out[n + 1], out[n + 2], out[n + 3], out[n + 4] =
      1, math.floor((capacity - needed) / interval), 0, needed
  end
end

if spent then
  -- The key lives exactly until its bucket is full again.
  redis.call('SET', KEYS[1], string.format('%.0f', tat),
    'PX', math.ceil((tat - now) / 1000))
end
return out
