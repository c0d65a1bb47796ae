-- Put a player in a mode's queue with their ticket, unless already there.
-- Also used to put back an odd player left over by a pop, with the original score.
-- KEYS[1] queue   (sorted set: player id -> enqueue time in ms)
-- KEYS[2] tickets (hash: player id -> ticket JSON); same hash slot as KEYS[1]
-- ARGV[1] player id
-- ARGV[2] score: enqueue time in ms
-- ARGV[3] ticket JSON (battle snapshot built by the game server)
-- Returns {1, queue size} when queued, {0, queue size} when the player was already queued.
local queue_key = KEYS[1]
local tickets_key = KEYS[2]
local player_id = ARGV[1]
local score = tonumber(ARGV[2])
local ticket = ARGV[3]

if redis.call('ZSCORE', queue_key, player_id) then
    return {0, redis.call('ZCARD', queue_key)}
end
redis.call('ZADD', queue_key, score, player_id)
redis.call('HSET', tickets_key, player_id, ticket)
return {1, redis.call('ZCARD', queue_key)}
