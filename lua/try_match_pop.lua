-- Atomically take the longest-waiting players of a queue (an even number) for pairing.
-- They move to the in-flight set under a lease instead of disappearing: if the match server
-- dies before commit_match.lua, reap.lua puts them back with their original enqueue time.
-- Several match servers may call this on one queue at once: each player is popped by exactly one.
-- Records stay "queued" while a player is in flight: being paired is still being queued.
-- KEYS[1] queue, KEYS[2] tickets, KEYS[3] ticket pods, KEYS[4] inflight,
-- KEYS[5] inflight scores (hash: player id -> original score); one hash slot
-- ARGV[1] most players to pop (rounded down to even)
-- ARGV[2] lease deadline (ms)
-- Returns a flat array {player id, score, ticket, pod id, ...}; a player whose ticket is missing
-- comes back with ticket = "" (poisoned: the caller drops it in commit_match.lua and reports it).
local queue_key, tickets_key, pods_key, inflight_key, scores_key =
    KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local limit = tonumber(ARGV[1])
local deadline = tonumber(ARGV[2])

local count = math.min(limit, redis.call('ZCARD', queue_key))
count = count - (count % 2)
if count < 2 then
    return {}
end
return cg_lease(redis.call('ZPOPMIN', queue_key, count), inflight_key, scores_key, tickets_key,
    pods_key, deadline)
