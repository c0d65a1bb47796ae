-- Put a player in a mode's queue with their ticket, unless already queued or being paired.
-- KEYS[1] queue       (sorted set: player id -> enqueue time in ms)
-- KEYS[2] tickets     (hash: player id -> ticket JSON)
-- KEYS[3] ticket pods (hash: player id -> pod id holding the player's session)
-- KEYS[4] inflight    (sorted set: players popped for pairing -> lease deadline)
-- All four share the mode's hash tag, so one slot.
-- ARGV[1] player id
-- ARGV[2] score: enqueue time in ms
-- ARGV[3] ticket JSON (battle snapshot built by the game server)
-- ARGV[4] pod id
-- Returns {1, queue size} when queued, {0, queue size} when already queued or being paired.
local queue_key, tickets_key, pods_key, inflight_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local player_id = ARGV[1]
local score = tonumber(ARGV[2])
local ticket = ARGV[3]
local pod_id = ARGV[4]

if redis.call('ZSCORE', queue_key, player_id) or redis.call('ZSCORE', inflight_key, player_id) then
    return {0, redis.call('ZCARD', queue_key)}
end
redis.call('ZADD', queue_key, score, player_id)
redis.call('HSET', tickets_key, player_id, ticket)
redis.call('HSET', pods_key, player_id, pod_id)
return {1, redis.call('ZCARD', queue_key)}
