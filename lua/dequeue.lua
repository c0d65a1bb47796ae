-- Take a player out of a mode's queue and drop their ticket.
-- KEYS[1] queue   (sorted set)
-- KEYS[2] tickets (hash); same hash slot as KEYS[1]
-- ARGV[1] player id
-- Returns {1, queue size} when removed, {0, queue size} when the player was not queued.
local queue_key = KEYS[1]
local tickets_key = KEYS[2]
local player_id = ARGV[1]

local removed = redis.call('ZREM', queue_key, player_id)
redis.call('HDEL', tickets_key, player_id)
return {removed, redis.call('ZCARD', queue_key)}
