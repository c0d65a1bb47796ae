-- Take a player out of a mode's queue and drop their ticket.
-- KEYS[1] queue, KEYS[2] tickets, KEYS[3] ticket pods (one hash slot)
-- ARGV[1] player id
-- ARGV[2] pod id that must hold the player's session, or "" for any. A game server dequeueing a
--         player whose socket closed passes its own pod: if the player has since reconnected to
--         another pod, the dequeue does nothing.
-- Returns {1, size} removed; {0, size} not queued; {2, size} queued but held by another pod.
local queue_key, tickets_key, pods_key = KEYS[1], KEYS[2], KEYS[3]
local player_id = ARGV[1]
local only_pod = ARGV[2]

if not redis.call('ZSCORE', queue_key, player_id) then
    return {0, redis.call('ZCARD', queue_key)}
end
if only_pod ~= '' and redis.call('HGET', pods_key, player_id) ~= only_pod then
    return {2, redis.call('ZCARD', queue_key)}
end
redis.call('ZREM', queue_key, player_id)
redis.call('HDEL', tickets_key, player_id)
redis.call('HDEL', pods_key, player_id)
return {1, redis.call('ZCARD', queue_key)}
