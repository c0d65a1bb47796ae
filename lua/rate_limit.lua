-- One rate limit check (GCRA, the generic cell rate algorithm), shared by every instance.
-- The key holds the theoretical arrival time (TAT) in microseconds of Redis' clock, so servers
-- with skewed clocks still agree. One key per limited subject: cluster-safe by construction.
-- KEYS[1] limit key (string), e.g. cg:rl:{auth:203.0.113.7}
-- ARGV[1] emission interval, microseconds (1e6 / requests per second)
-- ARGV[2] burst: requests allowed at once from a full bucket (>= 1)
-- ARGV[3] cost of this request (usually 1)
-- Returns {allowed (1 or 0), retry after (ms, 0 when allowed), remaining burst after this call}
if redis.replicate_commands then redis.replicate_commands() end  -- Redis < 5: TIME needs it
local key = KEYS[1]
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])

local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local tat = tonumber(redis.call('GET', key)) or now
if tat < now then tat = now end
local new_tat = tat + interval * cost
local allow_at = new_tat - interval * burst
if now < allow_at then
  return {0, math.ceil((allow_at - now) / 1000), 0}
end
-- The key expires when the bucket would be full again: idle subjects cost no memory.
redis.call('SET', key, string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
return {1, 0, math.floor((now - allow_at) / interval)}
