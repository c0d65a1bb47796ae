-- Atomically pop the longest-waiting players of a queue, an even number of them, with tickets.
-- Several match servers may call this on one queue at once: each player is popped by exactly one.
-- KEYS[1] queue   (sorted set)
-- KEYS[2] tickets (hash); same hash slot as KEYS[1]
-- ARGV[1] most players to pop (rounded down to even)
-- Returns a flat array {player id, score, ticket, player id, score, ticket, ...}; a player whose
-- ticket is missing comes back with ticket = "" (poisoned: the caller drops and reports it).
local queue_key = KEYS[1]
local tickets_key = KEYS[2]
local limit = tonumber(ARGV[1])

local size = redis.call('ZCARD', queue_key)
local count = math.min(limit, size)
count = count - (count % 2)
if count < 2 then
    return {}
end
local popped = redis.call('ZPOPMIN', queue_key, count)
local out = {}
local ids = {}
for i = 1, #popped, 2 do
    local player_id = popped[i]
    ids[#ids + 1] = player_id
    out[#out + 1] = player_id
    out[#out + 1] = popped[i + 1]
    out[#out + 1] = redis.call('HGET', tickets_key, player_id) or ''
end
redis.call('HDEL', tickets_key, unpack(ids))
return out
